package geo

import (
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/prismproxy/prism/internal/geo/geotest"
)

// BenchmarkLookupUncached is the cost of a lookup whose record is not in the
// decode cache (the first client from a network, or a cache slot collision):
// the slot is cleared before every lookup.
func BenchmarkLookupUncached(b *testing.B) {
	cdb := geotest.Shared(b, geotest.GeoLite2Country)
	adb := geotest.Shared(b, geotest.GeoLite2ASN)
	d, err := Open(Config{CountryDB: cdb, ASNDB: adb}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	a := netip.MustParseAddr("89.160.20.130")
	var slots []*atomic.Uint64
	for _, s := range d.srcs {
		l := s.cur.Load()
		off := l.r.Lookup(a).Offset()
		slots = append(slots, &l.cache[cacheSlot(uint32(off))])
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range slots {
			s.Store(0)
		}
		d.Lookup(a)
	}
}

// The cache must not confuse two records that share a slot.
func TestCacheSlotCollision(t *testing.T) {
	var l loaded
	// Find two offsets in the same slot.
	a := uintptr(100)
	b := a + 1
	for cacheSlot(uint32(b)) != cacheSlot(uint32(a)) {
		b++
	}
	l.store(a, 7)
	if v, ok := l.cached(a); !ok || v != 7 {
		t.Fatalf("cached(a) = %d, %v", v, ok)
	}
	if _, ok := l.cached(b); ok {
		t.Fatal("b hit a's entry")
	}
	l.store(b, 9)
	if _, ok := l.cached(a); ok {
		t.Fatal("a still cached after b replaced it")
	}
	if _, ok := l.cached(1<<32 - 1); ok {
		t.Fatal("offset beyond 32 bits cached")
	}
	if v, ok := countryIndex("SE"); !ok || countryCodes[v] != "SE" {
		t.Fatalf("countryIndex(SE) = %d %v", v, ok)
	}
	for _, bad := range []string{"se", "S", "SEX", "1A"} {
		if _, ok := countryIndex(bad); ok {
			t.Errorf("countryIndex(%q) ok", bad)
		}
	}
}
