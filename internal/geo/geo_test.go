package geo_test

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/geo/geotest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, cfg geo.Config) *geo.DB {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	d, err := geo.Open(cfg, quiet)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// The MaxMind test databases, with addresses from NETWORKS.txt.
func TestLookupMaxMindTestDatabases(t *testing.T) {
	d := open(t, geo.Config{
		CountryDB: geotest.Shared(t, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(t, geotest.GeoLite2ASN),
	})
	tests := []struct {
		addr    string
		country string
		asn     uint32
	}{
		{"89.160.20.130", "SE", 29518},
		{"::ffff:89.160.20.130", "SE", 29518}, // IPv4-mapped resolves as IPv4
		{"67.43.156.1", "BT", 35908},
		{"214.78.0.1", "US", 721},
		{"216.160.83.57", "US", 209},
		{"81.2.69.142", "GB", 0},
		{"::ffff:81.2.69.142", "GB", 0},
		{"1.0.0.1", "", 15169},
		{"2001:218::1", "JP", 0},
		{"2600:6000::1", "", 237},
		{"1.1.1.1", "", 0},   // in neither file: unknown, not an error
		{"127.0.0.1", "", 0}, // reserved
		{"fe80::1%eth0", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			cc, asn, err := d.Lookup(netip.MustParseAddr(tt.addr))
			if err != nil || cc != tt.country || asn != tt.asn {
				t.Fatalf("Lookup(%s) = %q, %d, %v; want %q, %d, nil", tt.addr, cc, asn, err, tt.country, tt.asn)
			}
			// Twice: the second answer comes from the offset cache.
			cc2, asn2, _ := d.Lookup(netip.MustParseAddr(tt.addr))
			if cc2 != cc || asn2 != asn {
				t.Fatalf("cached Lookup(%s) = %q, %d; first was %q, %d", tt.addr, cc2, asn2, cc, asn)
			}
		})
	}
}

// GeoIP2-Country has a network with no country (anycast): unknown, no error.
func TestLookupNoCountryInRecord(t *testing.T) {
	d := open(t, geo.Config{CountryDB: geotest.Shared(t, geotest.GeoIP2Country)})
	cc, asn, err := d.Lookup(netip.MustParseAddr("214.1.1.1"))
	if cc != "" || asn != 0 || err != nil {
		t.Fatalf("got %q %d %v, want unknown", cc, asn, err)
	}
	if cc, _, _ := d.Lookup(netip.MustParseAddr("175.16.199.1")); cc != "CN" {
		t.Fatalf("175.16.199.1: got %q, want CN", cc)
	}
}

// The flat country_code layout of DB-IP / ip-location-db databases.
func TestLookupFlatLayout(t *testing.T) {
	dir := t.TempDir()
	cdb := filepath.Join(dir, "dbip-country.mmdb")
	adb := filepath.Join(dir, "asn.mmdb")
	geotest.Write(t, cdb, geotest.Options{Layout: geotest.Flat},
		geotest.Net{CIDR: "127.0.0.0/8", Country: "ZZ"},
		geotest.Net{CIDR: "203.0.113.0/24", Country: "AU"},
		geotest.Net{CIDR: "2001:db8::/32", Country: "DE"},
	)
	geotest.Write(t, adb, geotest.Options{Layout: geotest.Flat},
		geotest.Net{CIDR: "203.0.113.0/25", ASN: 13335},
		geotest.Net{CIDR: "2001:db8:1::/48", ASN: 64512},
	)
	d := open(t, geo.Config{CountryDB: cdb, ASNDB: adb})
	tests := []struct {
		addr    string
		country string
		asn     uint32
	}{
		{"127.0.0.1", "ZZ", 0},
		{"::ffff:127.0.0.1", "ZZ", 0},
		{"203.0.113.7", "AU", 13335},
		{"203.0.113.200", "AU", 0},
		{"2001:db8:1::5", "DE", 64512},
		{"2001:db8:2::5", "DE", 0},
		{"192.0.2.1", "", 0},
	}
	for _, tt := range tests {
		cc, asn, err := d.Lookup(netip.MustParseAddr(tt.addr))
		if err != nil || cc != tt.country || asn != tt.asn {
			t.Errorf("Lookup(%s) = %q, %d, %v; want %q, %d", tt.addr, cc, asn, err, tt.country, tt.asn)
		}
	}
}

// A "country" key holding a name string (ipinfo's layout) does not break
// the decode; the code comes from country_code.
func TestLookupCountryNameString(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipinfo.mmdb")
	geotest.Write(t, path, geotest.Options{Layout: geotest.IPInfo},
		geotest.Net{CIDR: "127.0.0.0/8", Country: "US"})
	d := open(t, geo.Config{CountryDB: path})
	if cc, _, err := d.Lookup(netip.MustParseAddr("127.1.2.3")); cc != "US" || err != nil {
		t.Fatalf("got %q %v, want US", cc, err)
	}
}

// An IPv6 client looked up in an IPv4-only database is an error (the
// database cannot answer), reported for that database only.
func TestLookupIPv6InIPv4OnlyDB(t *testing.T) {
	dir := t.TempDir()
	cdb := filepath.Join(dir, "v4.mmdb")
	geotest.Write(t, cdb, geotest.Options{Layout: geotest.Flat, IPv4Only: true},
		geotest.Net{CIDR: "127.0.0.0/8", Country: "ZZ"})
	d := open(t, geo.Config{CountryDB: cdb, ASNDB: geotest.Shared(t, geotest.GeoLite2ASN)})
	if cc, _, err := d.Lookup(netip.MustParseAddr("::ffff:127.0.0.1")); err != nil || cc != "ZZ" {
		t.Fatalf("mapped IPv4 in IPv4-only DB: %q %v", cc, err)
	}
	ans := d.Resolve(netip.MustParseAddr("2600:6000::1"))
	if !errors.Is(ans.CountryErr, geo.ErrIPv4Only) || ans.ASNErr != nil || ans.ASN != 237 {
		t.Fatalf("Resolve = %+v; want CountryErr ErrIPv4Only, ASN 237", ans)
	}
	if _, _, err := d.Lookup(netip.MustParseAddr("2600:6000::1")); !errors.Is(err, geo.ErrIPv4Only) {
		t.Fatalf("Lookup err = %v, want ErrIPv4Only", err)
	}
}

func TestNilAndUnconfigured(t *testing.T) {
	d, err := geo.Open(geo.Config{}, quiet)
	if d != nil || err != nil {
		t.Fatalf("Open(zero) = %v, %v; want nil, nil", d, err)
	}
	cc, asn, err := d.Lookup(netip.MustParseAddr("89.160.20.130"))
	if cc != "" || asn != 0 || err != nil || d.HasCountry() || d.HasASN() {
		t.Fatalf("nil DB answered %q %d %v", cc, asn, err)
	}
	if err := d.Reload(true); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mmdb")
	good, err := os.ReadFile(geotest.Shared(t, geotest.GeoLite2Country))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []geo.Config{
		{CountryDB: filepath.Join(dir, "missing.mmdb")},
		{ASNDB: garbage},
		{CountryDB: truncated},
	} {
		if d, err := geo.Open(cfg, quiet); err == nil {
			d.Close()
			t.Errorf("Open(%+v) succeeded, want error", cfg)
		}
	}
	// The two paths swapped: each database opens and decodes, but holds
	// nothing of what it is configured for (every client would be
	// unknown), so it is refused with a reason.
	country, asn := geotest.Shared(t, geotest.GeoLite2Country), geotest.Shared(t, geotest.GeoLite2ASN)
	for _, tc := range []struct {
		cfg  geo.Config
		want string
	}{
		{geo.Config{CountryDB: asn}, "not a country database"},
		{geo.Config{ASNDB: country}, "not an ASN database"},
	} {
		d, err := geo.Open(tc.cfg, quiet)
		if err == nil {
			d.Close()
			t.Errorf("Open(%+v) succeeded, want %q", tc.cfg, tc.want)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if d, err := geo.Open(geo.Config{CountryDB: country, ASNDB: asn}, quiet); err != nil {
		t.Errorf("the databases the right way round: %v", err)
	} else {
		d.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	c := geo.Config{CountryDB: filepath.Join(dir, "nope.mmdb"), ASNDB: dir, ReloadInterval: time.Millisecond}
	errs := c.Validate()
	keys := map[string]bool{}
	for _, e := range errs {
		keys[e.Key] = true
	}
	for _, k := range []string{"country_db", "asn_db", "reload_interval"} {
		if !keys[k] {
			t.Errorf("no error for %s; got %v", k, errs)
		}
	}
	if errs := (geo.Config{}).Validate(); len(errs) != 0 {
		t.Errorf("zero config: %v", errs)
	}
	var d geo.Config
	d.SetDefaults()
	if d.ReloadInterval != geo.DefaultReloadInterval {
		t.Errorf("default reload interval %v", d.ReloadInterval)
	}
}

// A changed file is picked up by the poller; a bad new file keeps the old
// data; a later good file is picked up again.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "country.mmdb")
	geotest.Write(t, path, geotest.Options{Layout: geotest.Flat}, geotest.Net{CIDR: "127.0.0.0/8", Country: "ZZ"})
	d := open(t, geo.Config{CountryDB: path, ReloadInterval: 100 * time.Millisecond})
	lo := netip.MustParseAddr("127.0.0.1")
	if cc, _, _ := d.Lookup(lo); cc != "ZZ" {
		t.Fatalf("before: %q", cc)
	}

	// Replace the file; wait for reload checks until the poller has seen it.
	geotest.Write(t, path, geotest.Options{Layout: geotest.GeoIP2}, geotest.Net{CIDR: "127.0.0.0/8", Country: "FR"})
	waitFor(t, d, func() bool { cc, _, _ := d.Lookup(lo); return cc == "FR" })

	// The reloads below are made by hand, on a DB whose poller does not
	// run meanwhile (it could see the changes first, and a file seen once
	// is not read again).
	d = open(t, geo.Config{CountryDB: path, ReloadInterval: time.Hour})
	if cc, _, _ := d.Lookup(lo); cc != "FR" {
		t.Fatalf("reopened: %q", cc)
	}

	// A bad file: the reload fails and the loaded data stays.
	if err := os.WriteFile(path+".tmp", []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(false); err == nil {
		t.Fatal("Reload of a bad file returned nil")
	}
	if cc, _, err := d.Lookup(lo); cc != "FR" || err != nil {
		t.Fatalf("after bad file: %q %v, want FR (old data kept)", cc, err)
	}
	// The bad version is remembered, not re-read every interval.
	if err := d.Reload(false); err != nil {
		t.Fatalf("second check of the same bad file: %v", err)
	}

	// The file vanishes for a moment (an updater in the middle of a swap).
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(false); err == nil {
		t.Fatal("Reload of a missing file returned nil")
	}
	if cc, _, _ := d.Lookup(lo); cc != "FR" {
		t.Fatalf("after missing file: %q", cc)
	}

	geotest.Write(t, path, geotest.Options{Layout: geotest.Flat}, geotest.Net{CIDR: "127.0.0.0/8", Country: "NL"})
	if err := d.Reload(false); err != nil {
		t.Fatal(err)
	}
	if cc, _, _ := d.Lookup(lo); cc != "NL" {
		t.Fatalf("after good file: %q, want NL", cc)
	}
}

// waitFor waits on the DB's reload signal until cond holds (10 s at most).
func waitFor(t *testing.T, d *geo.DB, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-d.Changed():
		case <-deadline:
			t.Fatal("condition not met after reloads")
		}
	}
}

// Lookups run while files are swapped underneath (run with -race).
func TestConcurrentLookupAndReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "country.mmdb")
	geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "AA"})
	d := open(t, geo.Config{CountryDB: path, ReloadInterval: -1})
	lo := netip.MustParseAddr("127.0.0.1")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if cc, _, err := d.Lookup(lo); err != nil || (cc != "AA" && cc != "BB") {
					t.Errorf("Lookup during reload: %q %v", cc, err)
					return
				}
			}
		})
	}
	for i := range 20 {
		cc := "AA"
		if i%2 == 0 {
			cc = "BB"
		}
		geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: cc})
		if err := d.Reload(true); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestLookupDoesNotAllocate(t *testing.T) {
	d := open(t, geo.Config{
		CountryDB: geotest.Shared(t, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(t, geotest.GeoLite2ASN),
	})
	addrs := []netip.Addr{
		netip.MustParseAddr("89.160.20.130"),
		netip.MustParseAddr("::ffff:67.43.156.1"),
		netip.MustParseAddr("2001:218::1"),
		netip.MustParseAddr("1.1.1.1"),
	}
	for _, a := range addrs {
		d.Lookup(a) // warm the decode cache
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		d.Lookup(addrs[i%len(addrs)])
		i++
	}); n != 0 {
		t.Fatalf("Lookup allocates %v times per call", n)
	}
}

func TestClose(t *testing.T) {
	cfg := geo.Config{CountryDB: geotest.Shared(t, geotest.GeoLite2Country)}
	if err := cfgerr.Prepare(&cfg); err != nil { // Close also stops the poller
		t.Fatal(err)
	}
	d, err := geo.Open(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close() // idempotent
	if _, _, err := d.Lookup(netip.MustParseAddr("89.160.20.130")); !errors.Is(err, geo.ErrUnavailable) {
		t.Fatalf("Lookup after Close: %v, want ErrUnavailable", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	d, err := geo.Open(geo.Config{
		CountryDB: geotest.Shared(b, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(b, geotest.GeoLite2ASN),
	}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	addrs := []netip.Addr{
		netip.MustParseAddr("89.160.20.130"),
		netip.MustParseAddr("67.43.156.1"),
		netip.MustParseAddr("2001:218::1"),
		netip.MustParseAddr("1.1.1.1"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Lookup(addrs[i&3])
		i++
	}
}

// TestReplacedOnlyWhenContentsChange: Replaced, which the firewall passes on
// to UDP servers to end their negative entries, closes when a reload puts
// other data in use, and not on a check that finds no file changed, a
// forced re-read of the same file (SIGHUP) or a file that is refused.
func TestReplacedOnlyWhenContentsChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "FR"})
	d := open(t, geo.Config{CountryDB: path, ReloadInterval: -1})
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := d.Replaced()
	if err := d.Reload(false); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(true); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("Replaced closed by reloads of the same file")
	}
	if err := os.WriteFile(path+".tmp", []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(false); err == nil {
		t.Fatal("Reload of a bad file returned nil")
	}
	if closed(ch) {
		t.Fatal("Replaced closed by a refused file")
	}
	geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "NL"})
	if err := d.Reload(false); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("Replaced not closed when another database was put in use")
	}
	if closed(d.Replaced()) {
		t.Fatal("the next Replaced is closed already")
	}
	var none *geo.DB
	if none.Replaced() != nil {
		t.Fatal("a nil DB's Replaced is not nil")
	}
}
