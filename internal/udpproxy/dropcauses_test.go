package udpproxy

import (
	"reflect"
	"strings"
	"testing"
)

// TestUDPDropCausesCoverStats: every Drop* counter of Stats is a
// cause of prism_udp_dropped_datagrams_total, read from its own field, so
// that a drop cause added to the UDP proxy cannot be missing from /metrics.
func TestUDPDropCausesCoverStats(t *testing.T) {
	typ := reflect.TypeOf(Stats{})
	var fields []string
	for i := 0; i < typ.NumField(); i++ {
		if strings.HasPrefix(typ.Field(i).Name, "Drop") {
			fields = append(fields, typ.Field(i).Name)
		}
	}
	if len(fields) != len(DropCauses) {
		t.Fatalf("Stats has %d drop counters %v, DropCauses has %d", len(fields), fields, len(DropCauses))
	}
	causes := map[string]bool{}
	for i, f := range fields {
		var st Stats
		reflect.ValueOf(&st).Elem().FieldByName(f).SetInt(int64(i + 1))
		hits := 0
		for _, d := range DropCauses {
			if d.Count(st) != 0 {
				hits++
				if causes[d.Name] {
					t.Errorf("cause %s reads more than one field", d.Name)
				}
				causes[d.Name] = true
				if d.Count(st) != int64(i+1) {
					t.Errorf("cause %s reads %d for %s", d.Name, d.Count(st), f)
				}
			}
		}
		if hits != 1 {
			t.Errorf("field %s is read by %d causes, want 1", f, hits)
		}
	}
}
