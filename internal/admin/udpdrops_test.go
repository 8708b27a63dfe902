package admin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/udpproxy"
)

// TestUDPDropCausesCoverStats: every Drop* counter of udpproxy.Stats is a
// cause of prism_udp_dropped_datagrams_total, read from its own field, so
// that a drop cause added to the UDP proxy cannot be missing from /metrics.
func TestUDPDropCausesCoverStats(t *testing.T) {
	typ := reflect.TypeOf(udpproxy.Stats{})
	var fields []string
	for i := 0; i < typ.NumField(); i++ {
		if strings.HasPrefix(typ.Field(i).Name, "Drop") {
			fields = append(fields, typ.Field(i).Name)
		}
	}
	if len(fields) != len(udpDrops) {
		t.Fatalf("udpproxy.Stats has %d drop counters %v, /metrics has %d causes", len(fields), fields, len(udpDrops))
	}
	causes := map[string]bool{}
	for i, f := range fields {
		var st udpproxy.Stats
		reflect.ValueOf(&st).Elem().FieldByName(f).SetInt(int64(i + 1))
		hits := 0
		for _, d := range udpDrops {
			if d.get(st) != 0 {
				hits++
				if causes[d.cause] {
					t.Errorf("cause %s reads more than one field", d.cause)
				}
				causes[d.cause] = true
				if d.get(st) != int64(i+1) {
					t.Errorf("cause %s reads %d for %s", d.cause, d.get(st), f)
				}
			}
		}
		if hits != 1 {
			t.Errorf("field %s is read by %d causes, want 1", f, hits)
		}
	}
}
