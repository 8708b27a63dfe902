package firewall_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/geo/geotest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixtureDB opens a country and an ASN database over loopback and
// documentation ranges:
//
//	127.1.0.0/16 CN   127.1.1.0/24 AS13335
//	127.2.0.0/16 SE   127.2.0.0/16 AS64500
//	127.3.0.0/16 US   127.3.0.0/16 AS64501
//	2001:db8::/32 CN  2001:db8:1::/48 AS13335
func fixtureDB(t testing.TB, countryOpt geotest.Options) *geo.DB {
	t.Helper()
	dir := t.TempDir()
	cdb, adb := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	nets := []geotest.Net{
		{CIDR: "127.1.0.0/16", Country: "CN"},
		{CIDR: "127.2.0.0/16", Country: "SE"},
		{CIDR: "127.3.0.0/16", Country: "US"},
	}
	if !countryOpt.IPv4Only {
		nets = append(nets, geotest.Net{CIDR: "2001:db8::/32", Country: "CN"})
	}
	geotest.Write(t, cdb, countryOpt, nets...)
	geotest.Write(t, adb, geotest.Options{},
		geotest.Net{CIDR: "127.1.1.0/24", ASN: 13335},
		geotest.Net{CIDR: "127.2.0.0/16", ASN: 64500},
		geotest.Net{CIDR: "127.3.0.0/16", ASN: 64501},
		geotest.Net{CIDR: "2001:db8:1::/48", ASN: 13335},
	)
	d, err := geo.Open(geo.Config{CountryDB: cdb, ASNDB: adb, ReloadInterval: -1}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// prepared is cfg defaulted and validated, as New expects it.
func prepared(t testing.TB, cfg firewall.Config) firewall.Config {
	t.Helper()
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newFW(t testing.TB, cfg firewall.Config, db *geo.DB) *firewall.Firewall {
	t.Helper()
	f, err := firewall.New(prepared(t, cfg), db, quiet)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

var rules = []firewall.Rule{
	{Action: "block", CIDR: "127.9.0.0/16"},
	{Action: "allow", IP: "127.9.9.9"},
	{Action: "block", Country: "cn"},
	{Action: "allow", ASN: "AS13335"},
	{Action: "block", ASN: "64500"},
	{Action: "allow", Country: "US"},
	{Action: "block", CIDR: "127.3.3.0/24"},
	{Action: "block", CIDR: "::ffff:127.8.0.0/112"}, // mapped form = 127.8.0.0/16
}

type want struct {
	match   string
	blocked bool
	country string
	asn     uint32
}

func check(t *testing.T, f *firewall.Firewall, addr string, w want) {
	t.Helper()
	e := event.New("app", event.ID{})
	blocked := f.Apply(netip.MustParseAddr(addr), &e)
	if blocked != w.blocked || e.FirewallMatch != w.match || e.Country != w.country || e.ASN != w.asn {
		t.Errorf("Apply(%s) = blocked %v, %s, %q, AS%d; want blocked %v, %s, %q, AS%d",
			addr, blocked, e.FirewallMatch, e.Country, e.ASN, w.blocked, w.match, w.country, w.asn)
	}
}

func TestPrecedenceAndOutcomes(t *testing.T) {
	f := newFW(t, firewall.Config{Rules: rules}, fixtureDB(t, geotest.Options{Layout: geotest.Flat}))
	tests := []struct {
		name, addr string
		want
	}{
		{"cidr block", "127.9.1.1", want{event.FirewallBlockIP, true, "", 0}},
		{"longer ip allow inside blocked cidr", "127.9.9.9", want{event.FirewallWhitelistIP, false, "", 0}},
		{"mapped client, ip allow", "::ffff:127.9.9.9", want{event.FirewallWhitelistIP, false, "", 0}},
		{"mapped rule matches plain v4", "127.8.0.1", want{event.FirewallBlockIP, true, "", 0}},
		{"country block", "127.1.2.3", want{event.FirewallBlockCountry, true, "CN", 0}},
		{"asn allow beats country block", "127.1.1.5", want{event.FirewallWhitelistASN, false, "CN", 13335}},
		{"asn block", "127.2.0.1", want{event.FirewallBlockASN, true, "SE", 64500}},
		{"country allow", "127.3.0.1", want{event.FirewallWhitelistCountry, false, "US", 64501}},
		{"cidr block beats country allow", "127.3.3.3", want{event.FirewallBlockIP, true, "US", 64501}},
		{"no match", "127.4.0.1", want{event.FirewallUnknown, false, "", 0}},
		{"v6 country block", "2001:db8:2::1", want{event.FirewallBlockCountry, true, "CN", 0}},
		{"v6 asn allow", "2001:db8:1::1", want{event.FirewallWhitelistASN, false, "CN", 13335}},
		{"v6 no match", "2001:db9::1", want{event.FirewallUnknown, false, "", 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, f, tt.addr, tt.want) })
	}
	e := event.New("app", event.ID{})
	f.Apply(netip.MustParseAddr("127.4.0.1"), &e)
	if !e.Firewall {
		t.Error("IpFirewall false for an enabled firewall")
	}
}

// The MaxMind test databases: an address that is in both files.
func TestSharedDatabases(t *testing.T) {
	db, err := geo.Open(geo.Config{
		CountryDB: geotest.Shared(t, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(t, geotest.GeoLite2ASN),
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := newFW(t, firewall.Config{Rules: []firewall.Rule{
		{Action: "block", Country: "SE"},
		{Action: "allow", ASN: "29518"},
		{Action: "block", Country: "BT"},
		{Action: "block", Country: "gb"},
		{Action: "block", ASN: "721"},
		{Action: "block", CIDR: "216.160.83.56/29"},
	}}, db)
	check(t, f, "89.160.20.130", want{event.FirewallWhitelistASN, false, "SE", 29518})
	check(t, f, "81.2.69.142", want{event.FirewallBlockCountry, true, "GB", 0})
	check(t, f, "67.43.156.1", want{event.FirewallBlockCountry, true, "BT", 35908})
	check(t, f, "214.78.0.1", want{event.FirewallBlockASN, true, "US", 721})
	check(t, f, "216.160.83.57", want{event.FirewallBlockIP, true, "US", 209})
	check(t, f, "::ffff:216.160.83.57", want{event.FirewallBlockIP, true, "US", 209})
	check(t, f, "2001:218::1", want{event.FirewallUnknown, false, "JP", 0})
}

func TestDisabledAndNil(t *testing.T) {
	db := fixtureDB(t, geotest.Options{})
	off := newFW(t, firewall.Config{}, db)
	e := event.New("app", event.ID{})
	if off.Apply(netip.MustParseAddr("127.1.1.1"), &e) || e.Firewall || e.FirewallMatch != event.FirewallUnknown || e.Country != "CN" || e.ASN != 13335 {
		t.Errorf("disabled firewall: %+v", e)
	}
	no := false
	explicitOff := newFW(t, firewall.Config{Enabled: &no, Rules: rules}, db)
	e = event.New("app", event.ID{})
	if explicitOff.Apply(netip.MustParseAddr("127.9.1.1"), &e) || e.Firewall || e.FirewallMatch != event.FirewallUnknown {
		t.Errorf("enabled:false with rules: %+v", e)
	}

	var nilFW *firewall.Firewall
	e = event.New("app", event.ID{})
	e.FirewallMatch = ""
	if nilFW.Apply(netip.MustParseAddr("127.9.1.1"), &e) || e.Firewall || e.FirewallMatch != event.FirewallUnknown || e.Country != "" {
		t.Errorf("nil firewall: %+v", e)
	}
	if nilFW.Close() != nil || nilFW.Reload(true) != nil || nilFW.Enabled() {
		t.Error("nil firewall methods")
	}

	// Enabled with no rules at all: on, nothing matches.
	yes := true
	on := newFW(t, firewall.Config{Enabled: &yes}, nil)
	e = event.New("app", event.ID{})
	if on.Apply(netip.MustParseAddr("127.1.1.1"), &e) || !e.Firewall || e.FirewallMatch != event.FirewallUnknown {
		t.Errorf("enabled, no rules: %+v", e)
	}
}

func TestDefaultBlock(t *testing.T) {
	f := newFW(t, firewall.Config{Default: "block", Rules: []firewall.Rule{
		{Action: "allow", Country: "SE"},
	}}, fixtureDB(t, geotest.Options{}))
	check(t, f, "127.2.0.1", want{event.FirewallWhitelistCountry, false, "SE", 64500})
	check(t, f, "127.4.0.1", want{event.FirewallUnknown, true, "", 0})
	check(t, f, "127.1.0.1", want{event.FirewallUnknown, true, "CN", 0})

	// Default block alone turns the firewall on.
	g := newFW(t, firewall.Config{Default: "block"}, nil)
	check(t, g, "127.0.0.1", want{event.FirewallUnknown, true, "", 0})
}

// Rules that need a database that is missing, or a lookup that fails.
func TestFailClosed(t *testing.T) {
	geoRules := []firewall.Rule{
		{Action: "block", Country: "CN"},
		{Action: "allow", ASN: "13335"},
		{Action: "block", CIDR: "127.9.0.0/16"},
	}
	t.Run("no database, fail open", func(t *testing.T) {
		f := newFW(t, firewall.Config{Rules: geoRules}, nil)
		check(t, f, "127.1.2.3", want{event.FirewallUnknown, false, "", 0})
		check(t, f, "127.9.0.1", want{event.FirewallBlockIP, true, "", 0})
	})
	t.Run("no database, fail closed", func(t *testing.T) {
		f := newFW(t, firewall.Config{Rules: geoRules, FailClosed: true}, nil)
		check(t, f, "127.1.2.3", want{event.FirewallBlockError, true, "", 0})
		// An IP rule decides without any database.
		check(t, f, "127.9.0.1", want{event.FirewallBlockIP, true, "", 0})
	})
	t.Run("country rule, only an ASN database, fail closed", func(t *testing.T) {
		dir := t.TempDir()
		adb := filepath.Join(dir, "asn.mmdb")
		geotest.Write(t, adb, geotest.Options{}, geotest.Net{CIDR: "127.1.1.0/24", ASN: 13335})
		db, err := geo.Open(geo.Config{ASNDB: adb}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		f := newFW(t, firewall.Config{Rules: geoRules, FailClosed: true}, db)
		// The ASN rule decides before the country level is needed.
		check(t, f, "127.1.1.1", want{event.FirewallWhitelistASN, false, "", 13335})
		check(t, f, "127.1.2.1", want{event.FirewallBlockError, true, "", 0})
	})
	// An IPv6 client against an IPv4-only country database: a lookup error.
	ipv4Only := geotest.Options{Layout: geotest.Flat, IPv4Only: true}
	t.Run("lookup error, fail closed", func(t *testing.T) {
		f := newFW(t, firewall.Config{Rules: geoRules, FailClosed: true}, fixtureDB(t, ipv4Only))
		check(t, f, "2001:db8:1::1", want{event.FirewallWhitelistASN, false, "", 13335})
		check(t, f, "2001:db8:2::1", want{event.FirewallBlockError, true, "", 0})
		check(t, f, "127.1.2.3", want{event.FirewallBlockCountry, true, "CN", 0})
	})
	t.Run("lookup error, fail open", func(t *testing.T) {
		f := newFW(t, firewall.Config{Rules: geoRules}, fixtureDB(t, ipv4Only))
		check(t, f, "2001:db8:2::1", want{event.FirewallUnknown, false, "", 0})
	})
	t.Run("unix-socket client (no address)", func(t *testing.T) {
		f := newFW(t, firewall.Config{Rules: geoRules, FailClosed: true}, nil)
		e := event.New("app", event.ID{})
		if f.Apply(netip.Addr{}, &e) || e.FirewallMatch != event.FirewallUnknown {
			t.Errorf("invalid address: blocked or %s", e.FirewallMatch)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestListsAndReload(t *testing.T) {
	dir := t.TempDir()
	block := filepath.Join(dir, "block.txt")
	allow := filepath.Join(dir, "allow.txt")
	writeFile(t, block, `# threat feed
127.9.0.0/16
127.8.8.8      # one host
AS64500
cn

2001:db8:2::/48
`)
	writeFile(t, allow, "127.1.0.7\n13335\n")
	f := newFW(t, firewall.Config{
		Rules: []firewall.Rule{{Action: "block", ASN: "13335"}}, // the allow list wins on the same key
		Lists: []firewall.List{
			{Action: "block", Path: block},
			{Action: "allow", Path: allow},
		},
		ReloadInterval: 100 * time.Millisecond,
	}, fixtureDB(t, geotest.Options{}))
	check(t, f, "127.9.1.1", want{event.FirewallBlockIP, true, "", 0})
	check(t, f, "127.8.8.8", want{event.FirewallBlockIP, true, "", 0})
	check(t, f, "127.2.3.4", want{event.FirewallBlockASN, true, "SE", 64500})
	check(t, f, "127.1.2.3", want{event.FirewallBlockCountry, true, "CN", 0})
	check(t, f, "127.1.0.7", want{event.FirewallWhitelistIP, false, "CN", 0})
	check(t, f, "127.1.1.1", want{event.FirewallWhitelistASN, false, "CN", 13335})
	check(t, f, "2001:db8:2::9", want{event.FirewallBlockIP, true, "CN", 0})

	// Replace the block list; the poller picks it up.
	writeFile(t, block, "127.4.0.0/16\n")
	waitChanged(t, f, func() bool {
		e := event.New("app", event.ID{})
		return f.Apply(netip.MustParseAddr("127.4.0.1"), &e)
	})
	check(t, f, "127.4.0.1", want{event.FirewallBlockIP, true, "", 0})
	check(t, f, "127.9.1.1", want{event.FirewallUnknown, false, "", 0})
	check(t, f, "127.1.2.3", want{event.FirewallUnknown, false, "CN", 0})

	// The reloads below are made by hand, on a firewall whose poller does
	// not run meanwhile (it could see the changes first, and a file seen
	// once is not read again).
	f = newFW(t, firewall.Config{
		Lists:          []firewall.List{{Action: "block", Path: block}},
		ReloadInterval: time.Hour,
	}, fixtureDB(t, geotest.Options{}))
	check(t, f, "127.4.0.1", want{event.FirewallBlockIP, true, "", 0})

	// A bad line: the whole new file is refused and the old entries stay.
	writeFile(t, block, "127.5.0.0/16\nnot-an-entry\n")
	if err := f.Reload(false); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("Reload of a bad list: %v, want an error naming line 2", err)
	}
	check(t, f, "127.4.0.1", want{event.FirewallBlockIP, true, "", 0})
	check(t, f, "127.5.0.1", want{event.FirewallUnknown, false, "", 0})

	// A missing file keeps the old entries too.
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(false); err == nil {
		t.Fatal("Reload of a missing list returned nil")
	}
	check(t, f, "127.4.0.1", want{event.FirewallBlockIP, true, "", 0})
}

// waitChanged waits until cond holds, checking it after every change of
// the rules. The signal is taken before cond is checked: Changed is closed
// by a change, not by every reload check, so one taken after a change that
// cond missed would wait for the next change.
func waitChanged(t *testing.T, f *firewall.Firewall, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := f.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("list change not picked up")
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	writeFile(t, bad, "127.0.0.1\n300.1.1.1\n")
	// Validation (config.Load, or cfgerr.Prepare) refuses them all.
	for _, cfg := range []firewall.Config{
		{Lists: []firewall.List{{Action: "block", Path: filepath.Join(dir, "missing")}}},
		{Lists: []firewall.List{{Action: "block", Path: bad}}},
		{Rules: []firewall.Rule{{Action: "deny", IP: "127.0.0.1"}}},
	} {
		if err := cfgerr.Prepare(&cfg); err == nil {
			t.Errorf("Prepare(%+v) succeeded", cfg)
		}
	}
	// New reads the list files again: one that went missing or bad after
	// validation is an error there too.
	for _, spoil := range []func(path string){
		func(path string) { _ = os.Remove(path) },
		func(path string) { writeFile(t, path, "127.0.0.1\n300.1.1.1\n") },
	} {
		path := filepath.Join(dir, "list.txt")
		writeFile(t, path, "127.0.0.1\n")
		cfg := prepared(t, firewall.Config{Lists: []firewall.List{{Action: "block", Path: path}}})
		spoil(path)
		if f, err := firewall.New(cfg, nil, quiet); err == nil {
			f.Close()
			t.Errorf("New(%+v) succeeded with a list file gone bad", cfg)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	writeFile(t, bad, "# ok\n127.0.0.1\nAS12x\n")
	tests := []struct {
		name string
		cfg  firewall.Config
		key  string
		msg  string
	}{
		{"bad default", firewall.Config{Default: "deny"}, "default", "allow or block"},
		{"bad action", firewall.Config{Rules: []firewall.Rule{{Action: "deny", IP: "127.0.0.1"}}}, "rules[0].action", "allow or block"},
		{"two keys", firewall.Config{Rules: []firewall.Rule{{Action: "block", IP: "127.0.0.1", Country: "CN"}}}, "rules[0]", "exactly one"},
		{"no key", firewall.Config{Rules: []firewall.Rule{{Action: "block"}}}, "rules[0]", "exactly one"},
		{"bad ip", firewall.Config{Rules: []firewall.Rule{{Action: "block", IP: "127.0.0"}}}, "rules[0].ip", "not an IP"},
		{"bad cidr", firewall.Config{Rules: []firewall.Rule{{Action: "block", CIDR: "10.0.0.0/33"}}}, "rules[0].cidr", "not a CIDR"},
		{"bad country", firewall.Config{Rules: []firewall.Rule{{Action: "block", Country: "CHN"}}}, "rules[0].country", "two-letter"},
		{"bad asn", firewall.Config{Rules: []firewall.Rule{{Action: "block", ASN: "AS0"}}}, "rules[0].asn", "AS number"},
		{"conflict", firewall.Config{Rules: []firewall.Rule{
			{Action: "block", CIDR: "10.0.0.0/8"}, {Action: "allow", CIDR: "10.1.0.0/8"},
		}}, "rules[1]", "both allowed and blocked"},
		{"list action", firewall.Config{Lists: []firewall.List{{Action: "", Path: bad}}}, "lists[0].action", "allow or block"},
		{"list path", firewall.Config{Lists: []firewall.List{{Action: "block"}}}, "lists[0].path", "required"},
		{"list bad line", firewall.Config{Lists: []firewall.List{{Action: "block", Path: bad}}}, "lists[0].path", "bad.txt:3: not an IP, CIDR, country code or AS number"},
		{"reload interval", firewall.Config{ReloadInterval: time.Millisecond}, "reload_interval", "at least"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range tt.cfg.Validate() {
				if e.Key == tt.key && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("Validate() = %v; want %s: ...%s...", tt.cfg.Validate(), tt.key, tt.msg)
		})
	}
	good := firewall.Config{FailClosed: true, Default: "block", Rules: rules}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("good config: %v", errs)
	}
}

func TestSetDefaults(t *testing.T) {
	var c firewall.Config
	c.SetDefaults()
	if *c.Enabled || c.Default != "allow" || c.ReloadInterval != firewall.DefaultReloadInterval {
		t.Errorf("zero config defaults: enabled %v default %q interval %v", *c.Enabled, c.Default, c.ReloadInterval)
	}
	c = firewall.Config{Rules: rules}
	c.SetDefaults()
	if !*c.Enabled {
		t.Error("a section with rules is not enabled by default")
	}
}

func TestApplyDoesNotAllocate(t *testing.T) {
	f := newFW(t, firewall.Config{Rules: rules}, fixtureDB(t, geotest.Options{}))
	addrs := []netip.Addr{
		netip.MustParseAddr("127.9.9.9"), netip.MustParseAddr("127.1.1.5"),
		netip.MustParseAddr("127.2.0.1"), netip.MustParseAddr("::ffff:127.3.0.1"),
		netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("127.4.0.1"),
	}
	e := event.New("app", event.ID{})
	for _, a := range addrs {
		f.Apply(a, &e)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		f.Apply(addrs[i%len(addrs)], &e)
		i++
	}); n != 0 {
		t.Fatalf("Apply allocates %v times per decision", n)
	}
}

// BenchmarkApply: one decision against 100,000 rules (90,000 CIDRs, 9,800
// ASNs, 200 countries) with both MaxMind test databases loaded. The
// addresses cover every level: CIDR hit, ASN hit, country hit, no match.
func BenchmarkApply(b *testing.B) {
	db, err := geo.Open(geo.Config{
		CountryDB: geotest.Shared(b, geotest.GeoLite2Country),
		ASNDB:     geotest.Shared(b, geotest.GeoLite2ASN),
	}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var rs []firewall.Rule
	for i := range 90_000 {
		// /24s and /32s spread over 10.0.0.0/8 and 100.64.0.0/10, some v6.
		switch i % 3 {
		case 0:
			rs = append(rs, firewall.Rule{Action: "block", CIDR: fmt.Sprintf("10.%d.%d.0/24", i>>8&255, i&255)})
		case 1:
			rs = append(rs, firewall.Rule{Action: "block", IP: fmt.Sprintf("100.%d.%d.%d", 64+i>>16&63, i>>8&255, i&255)})
		default:
			rs = append(rs, firewall.Rule{Action: "block", CIDR: fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff)})
		}
	}
	for i := range 9_800 {
		rs = append(rs, firewall.Rule{Action: "block", ASN: fmt.Sprint(100_000 + i)})
	}
	rs = append(rs, firewall.Rule{Action: "allow", ASN: "29518"})
	n := 0
	for a := 'A'; a <= 'Z' && n < 200; a++ {
		for c := 'A'; c <= 'Z' && n < 200; c++ {
			if cc := string([]rune{a, c}); cc != "GB" && cc != "JP" {
				rs = append(rs, firewall.Rule{Action: "block", Country: cc})
				n++
			}
		}
	}
	f, err := firewall.New(prepared(b, firewall.Config{Rules: rs}), db, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	addrs := []netip.Addr{
		netip.MustParseAddr("10.1.2.3"),      // CIDR
		netip.MustParseAddr("89.160.20.130"), // ASN allow (SE, AS29518)
		netip.MustParseAddr("67.43.156.1"),   // country (BT)
		netip.MustParseAddr("81.2.69.142"),   // GB: no match
		netip.MustParseAddr("2001:218::1"),   // JP: no match, v6
		netip.MustParseAddr("::ffff:216.160.83.57"),
		netip.MustParseAddr("2001:db8:0:5::1"), // v6 CIDR
		netip.MustParseAddr("1.1.1.1"),         // in no database
	}
	b.Logf("%d rules", len(rs))
	e := event.New("app", event.ID{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Apply(addrs[i&7], &e)
		i++
	}
}

// BenchmarkReloadList measures re-reading and swapping in a 100,000-line
// list file (what a changed threat feed costs the poller, off the
// connection path).
func BenchmarkReloadList(b *testing.B) {
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "10.%d.%d.0/24\n", i>>8&255, i&255)
	}
	path := filepath.Join(b.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := firewall.New(prepared(b, firewall.Config{Lists: []firewall.List{{Action: "block", Path: path}}, ReloadInterval: -1}), nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if err := f.Reload(true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestChangedOnlyWhenRulesChange: Changed was closed by every reload check,
// including the periodic ones that found no list file changed, and a UDP
// server ends every negative entry when it is closed. A check that finds
// nothing new, a forced re-read of unchanged files and a file rewritten
// with the same entries leave it open; other entries close it.
func TestChangedOnlyWhenRulesChange(t *testing.T) {
	list := filepath.Join(t.TempDir(), "block.txt")
	writeFile(t, list, "127.4.0.0/16\n")
	f := newFW(t, firewall.Config{
		Lists:          []firewall.List{{Action: "block", Path: list}},
		ReloadInterval: -1, // reloads by hand only
	}, nil)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := f.Changed()
	if err := f.Reload(false); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("Changed closed by a reload check that found no file changed")
	}
	if err := f.Reload(true); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("Changed closed by a forced re-read of unchanged files")
	}
	writeFile(t, list, "# same entry, new file\n127.4.0.0/16\n")
	if err := f.Reload(false); err != nil {
		t.Fatal(err)
	}
	if closed(ch) {
		t.Fatal("Changed closed by a file rewritten with the same entries")
	}
	writeFile(t, list, "127.5.0.0/16\n")
	if err := f.Reload(false); err != nil {
		t.Fatal(err)
	}
	if !closed(ch) {
		t.Fatal("Changed not closed when the list's entries changed")
	}
	check(t, f, "127.5.0.1", want{event.FirewallBlockIP, true, "", 0})
	if closed(f.Changed()) {
		t.Fatal("the next Changed is closed already")
	}
}

// TestPrefixFamilies pins what docs/firewall.md says about address
// families: clients are matched by their unmapped address, so an IPv4
// client (also one that arrives as ::ffff:a.b.c.d) is matched by IPv4
// prefixes only, and an IPv4-mapped prefix of /96 or longer is the IPv4
// prefix it covers. A shorter IPv6 prefix such as ::/0 or ::/8 stays IPv6
// (covering ::ffff:0:0/96 does not make it match IPv4 clients); 0.0.0.0/0
// or ::ffff:0:0/96 is "every IPv4 client". Rules and list files alike.
func TestPrefixFamilies(t *testing.T) {
	clients := []string{"127.4.0.1", "::ffff:127.4.0.1", "2001:db8::1"}
	for _, tc := range []struct {
		cidr    string
		blocked []bool // per client
	}{
		{"::/0", []bool{false, false, true}},
		{"::/8", []bool{false, false, false}},
		{"::/1", []bool{false, false, true}},
		{"::ffff:0:0/95", []bool{false, false, false}},
		{"0.0.0.0/0", []bool{true, true, false}},
		{"::ffff:0:0/96", []bool{true, true, false}},
		{"::ffff:127.4.0.0/112", []bool{true, true, false}},
		{"127.4.0.0/16", []bool{true, true, false}},
	} {
		list := filepath.Join(t.TempDir(), "list.txt")
		writeFile(t, list, tc.cidr+"\n")
		for _, cfg := range []firewall.Config{
			{Rules: []firewall.Rule{{Action: "block", CIDR: tc.cidr}}},
			{Lists: []firewall.List{{Action: "block", Path: list}}},
		} {
			f := newFW(t, cfg, nil)
			for i, c := range clients {
				e := event.New("app", event.ID{})
				got := f.Apply(netip.MustParseAddr(c), &e)
				if got != tc.blocked[i] {
					t.Errorf("block %s (rule %v): %s blocked %v, want %v", tc.cidr, len(cfg.Rules) > 0, c, got, tc.blocked[i])
				}
				if got && e.FirewallMatch != event.FirewallBlockIP {
					t.Errorf("block %s: %s matched %s", tc.cidr, c, e.FirewallMatch)
				}
			}
		}
	}
}

// TestChangedWhenTheGeoIPDatabaseIsReplaced: Changed is closed by a GeoIP
// database replaced with other data while the rules have a country or ASN
// entry (their verdicts read it: a UDP server's negative entries must end,
// as on a list change), not for rules of addresses only.
func TestChangedWhenTheGeoIPDatabaseIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "FR"})
	db, err := geo.Open(geo.Config{CountryDB: path, ReloadInterval: -1}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	byCountry := newFW(t, firewall.Config{Rules: []firewall.Rule{{Action: "block", Country: "FR"}}}, db)
	byAddress := newFW(t, firewall.Config{Rules: []firewall.Rule{{Action: "block", CIDR: "127.9.0.0/16"}}}, db)
	check(t, byCountry, "127.0.0.1", want{event.FirewallBlockCountry, true, "FR", 0})
	country, address := byCountry.Changed(), byAddress.Changed()
	geotest.Write(t, path, geotest.Options{}, geotest.Net{CIDR: "127.0.0.0/8", Country: "NL"})
	if err := db.Reload(false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-country:
	case <-time.After(10 * time.Second):
		t.Fatal("Changed of a firewall with a country rule not closed when the database was replaced")
	}
	check(t, byCountry, "127.0.0.1", want{event.FirewallUnknown, false, "NL", 0})
	select { // absence: its watcher passes a replacement on within microseconds
	case <-address:
		t.Fatal("Changed of a firewall with address rules only closed by a GeoIP replacement")
	case <-time.After(100 * time.Millisecond):
	}
}
