package config

import (
	"strings"
	"testing"
	"time"
)

const good = `
node: {colo: SJC, id: n1, region_name: "San Jose (CA)"}
apps:
  - id: web
    listen: ["127.0.0.1:8080", "127.0.0.1:9000-9009", "unix:/tmp/p.sock"]
    origins:
      addresses: ["127.0.0.1:3000-3009"]
      balance: least_conn
    proxy_protocol: v2
    inbound_proxy_protocol: {trusted_cidrs: ["10.0.0.0/8", "127.0.0.1"]}
    timeouts: {connect: 2s}
`

func TestParseGood(t *testing.T) {
	// 8080 is a single port while the origin is a 10-port range: that is a
	// mismatch, so use a config whose single listen port maps to a single origin.
	cfg, err := Parse("good.yaml", []byte(strings.Replace(good, `"127.0.0.1:8080", `, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if a.Protocol != "tcp" || a.Timeouts.Connect != 2*time.Second || a.Timeouts.Idle != DefaultIdle {
		t.Fatalf("defaults: %+v", a)
	}
	if len(a.ListenSpecs) != 2 || a.ListenSpecs[0].Ports() != 10 || a.ListenSpecs[1].Path != "/tmp/p.sock" {
		t.Fatalf("listen: %+v", a.ListenSpecs)
	}
	if len(a.Trusted) != 2 || a.Trusted[1].Bits() != 32 {
		t.Fatalf("trusted: %v", a.Trusted)
	}
	if len(a.Block) == 0 {
		t.Fatal("default origin block list not applied")
	}
}

func TestParseErrorsNameFileLineKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "node: {colo: X}\napps:\n  - id: a\n    lisen: [\":1\"]\n", `bad.yaml:4: apps[0].lisen: unknown key "lisen"`},
		{"bad duration", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    timeouts:\n      idle: soon\n", `bad.yaml:7: apps[0].timeouts.idle: "soon" is not a duration`},
		{"bad listen", "node: {colo: X}\napps:\n  - id: a\n    listen:\n      - \"127.0.0.1:99999\"\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:5: apps[0].listen[0]: bad port"},
		{"range mismatch", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1000-1004\"]\n    origins: {addresses: [\"127.0.0.1:2000-2009\"]}\n", "apps[0].listen[0]: listen range"},
		{"missing colo", "apps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml: node.colo: missing"},
		{"simple on tcp", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    proxy_protocol: simple\n", "bad.yaml:6: apps[0].proxy_protocol: simple"},
		{"bad balance", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins:\n      addresses: [\"127.0.0.1:2\"]\n      balance: fastest\n", "bad.yaml:7: apps[0].origins.balance: unknown policy"},
		// validate compared host strings: these passed and prism run failed at the bind
		{"wildcard and an address", "node: {colo: X}\napps:\n  - id: a\n    listen: [\":1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n  - id: b\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:7: apps[1].listen[0]: port 1 is already used by apps[0].listen"},
		{"ipv4 wildcard and an address", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n  - id: b\n    listen: [\"0.0.0.0:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:7: apps[1].listen[0]: port 1 is already used by apps[0].listen"},
		{"udp apps on one port", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"[::]:53\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n  - id: b\n    protocol: udp\n    listen: [\"localhost:53\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:9: apps[1].listen[0]: port 53 is already used by apps[0].listen"},
		{"admin on an app's port", "node: {colo: X}\nadmin: {listen: \"127.0.0.1:1\"}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1-3\"]\n    origins: {addresses: [\"127.0.0.1:9\"]}\n", "bad.yaml:2: admin.listen: port 1 is already used by apps[0].listen"},
		{"duplicate key in an app", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    max_connections: 1\n    max_connections: 2\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:6: apps[0].max_connections: mapping key \"max_connections\" already defined at line 5"},
		{"duplicate port", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n  - id: b\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:7: apps[1].listen[0]: port 1 is already used"},
		{"bad yaml", "node: [\n", "bad.yaml:"},
		{"bad relay mode", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    relay_mode: zerocopy\n", "bad.yaml:6: apps[0].relay_mode: unknown value \"zerocopy\" (use auto, splice or copy)"},
		{"relay mode on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    relay_mode: copy\n", "bad.yaml:7: apps[0].relay_mode: relay_mode is for tcp apps"},
		{"udp section on tcp", "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    udp: {max_datagram_size: 1}\n", "bad.yaml:6: apps[0].udp: the udp section is for udp apps (protocol: udp); this app is tcp"},
		{"tls keys on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    tls: {mode: off, sni_allow: [a.example]}\n", "bad.yaml:7: apps[0].tls: tls settings are for tcp apps"},
		{"header timeout on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    inbound_proxy_protocol: {trusted_cidrs: [10.0.0.0/8], header_timeout: 1s}\n", "apps[0].inbound_proxy_protocol.header_timeout: header_timeout is for tcp apps"},
		{"v1 on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    proxy_protocol: v1\n", "bad.yaml:7: apps[0].proxy_protocol: v1 is a TCP-only format"},
		{"unix socket on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"unix:/tmp/prism-x.sock\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n", "bad.yaml:5: apps[0].listen[0]: unix sockets are for tcp apps only"},
		{"tcp settings on udp", "node: {colo: X}\napps:\n  - id: a\n    protocol: udp\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n    max_connections: 5\n", "bad.yaml:7: apps[0].max_connections: max_connections is for tcp apps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestDuplicateKeyAlone: a duplicate key in an app is reported alone; the
// sequence it is in is left undecoded by yaml.v3, and the checks after it
// reported "no apps" as well.
func TestDuplicateKeyAlone(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    max_connections: 1\n    max_connections: 2\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"))
	if err == nil || !strings.Contains(err.Error(), "already defined at line 5") || strings.Contains(err.Error(), "no apps") {
		t.Errorf("duplicate key: %v", err)
	}
}

func TestValidateReportsEverythingPastATypeError(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("node: {colo: X}\napps:\n  - id: a\n    protocol: sctp\n    lisen: [\":1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`bad.yaml:4: apps[0].protocol: unknown protocol "sctp"`, `bad.yaml:5: apps[0].lisen: unknown key`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nlacks %q", err, want)
		}
	}
}

func TestHostsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"", "127.0.0.1", true},
		{"::", "10.0.0.1", true}, // [::] takes both families
		{"0.0.0.0", "127.0.0.1", true},
		{"0.0.0.0", "::1", false},
		{"0.0.0.0", "::", true},
		{"::1", "[::1]", true},
		{"localhost", "127.0.0.1", true},
		{"edge.example", "edge.example", true},
		{"edge.example", "127.0.0.1", false},
	} {
		if got := hostsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
