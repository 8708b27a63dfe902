// Package geotest builds tiny MaxMind DB fixtures for tests and finds the
// shared MaxMind test databases. It is imported only by tests (geo,
// firewall, proxy end-to-end).
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/prismproxy/prism/internal/testpeer"
)

// Layout is the record shape of a fixture database.
type Layout int

const (
	// GeoIP2 writes {"country": {"iso_code": CC}} and/or
	// {"autonomous_system_number": N} as MaxMind's databases do.
	GeoIP2 Layout = iota
	// Flat writes {"country_code": CC} as the ip-location-db (DB-IP)
	// databases do, plus {"autonomous_system_number": N} for ASNs.
	Flat
	// IPInfo writes {"country": NAME, "country_code": CC}: the country's
	// name as a string where GeoIP2 has a map.
	IPInfo
)

// Net is one network of a fixture and what it maps to. Empty Country or
// zero ASN leaves that key out.
type Net struct {
	CIDR    string
	Country string
	ASN     uint32
}

// Options for Write.
type Options struct {
	Layout   Layout
	IPv4Only bool   // build an IPv4 tree (IPVersion 4)
	DBType   string // metadata database type; default "prism-test"
}

// Write builds a database with nets at path (written to a temp file and
// renamed, as an updater should). Reserved networks (loopback, private,
// documentation) are allowed so tests can use 127.0.0.0/8 and friends.
func Write(t testing.TB, path string, opt Options, nets ...Net) {
	t.Helper()
	typ := opt.DBType
	if typ == "" {
		typ = "prism-test"
	}
	o := mmdbwriter.Options{
		DatabaseType:            typ,
		Description:             map[string]string{"en": "prism test fixture"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	}
	if opt.IPv4Only {
		o.IPVersion = 4
	}
	tree, err := mmdbwriter.New(o)
	if err != nil {
		t.Fatalf("mmdbwriter: %v", err)
	}
	for _, n := range nets {
		_, ipn, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatalf("fixture network %q: %v", n.CIDR, err)
		}
		rec := mmdbtype.Map{}
		if n.Country != "" {
			switch opt.Layout {
			case Flat:
				rec["country_code"] = mmdbtype.String(n.Country)
			case IPInfo:
				rec["country"] = mmdbtype.String("Country " + n.Country)
				rec["country_code"] = mmdbtype.String(n.Country)
			default:
				rec["country"] = mmdbtype.Map{
					"iso_code": mmdbtype.String(n.Country),
					"names":    mmdbtype.Map{"en": mmdbtype.String("Country " + n.Country)},
				}
			}
		}
		if n.ASN != 0 {
			rec["autonomous_system_number"] = mmdbtype.Uint32(n.ASN)
			rec["autonomous_system_organization"] = mmdbtype.String("Test AS")
		}
		if err := tree.Insert(ipn, rec); err != nil {
			t.Fatalf("insert %s: %v", n.CIDR, err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Shared returns the path of one of the MaxMind test databases vendored in
// the repository (testdata/geoip, with their licence). A missing file skips
// the test (fails it in CI).
func Shared(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("geotest: repository root (go.mod) not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "testdata", "geoip", name)
	return testpeer.NeedFile(t, p, "MaxMind test database")
}

// Shared database file names.
const (
	GeoLite2Country = "GeoLite2-Country-Test.mmdb"
	GeoIP2Country   = "GeoIP2-Country-Test.mmdb"
	GeoLite2ASN     = "GeoLite2-ASN-Test.mmdb"
)
