package proxy_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestOriginBlockNormalisedDnsmasq: names served by a real DNS server
// (dnsmasq) that resolve to the metadata address written in other IPv6
// forms, or to loopback, end as resolveOrigin 532, and nothing is dialed.
func TestOriginBlockNormalisedDnsmasq(t *testing.T) {
	port := testpeer.FreePort(t)
	testpeer.Dnsmasq(t, port, "/compat.test/::169.254.169.254", "/nat64.test/64:ff9b::a9fe:a9fe",
		"/sixtofour.test/2002:a9fe:a9fe::1", "/loop.test/127.0.0.1", "/loop6.test/::1", "/zero.test/0.0.0.0")
	res := resolverFor("127.0.0.1:" + strconv.Itoa(port))
	origin := testpeer.Echo(t)
	_, oport := hostPort(t, origin)
	ps := strconv.Itoa(oport)

	for _, tc := range []struct{ name, detail string }{
		{"compat.test", "block list"},
		{"nat64.test", "block list"},
		{"sixtofour.test", "block list"},
		{"loop.test", "loopback"},
		{"loop6.test", "loopback"},
		{"zero.test", "loopback or unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{dns: {name: `+tc.name+`, port: "`+ps+`"}}`), withResolver(res))
			c := dial(t, addr)
			defer c.Close()
			e := rec.Next(t)
			if e.Type != event.ResolveOrigin || e.Status != event.StatusResolveBlocked || !strings.Contains(e.Detail, tc.detail) {
				t.Fatalf("got %s %d (%s), want resolveOrigin 532 (%s)", e.Type, e.Status, e.Detail, tc.detail)
			}
		})
	}
	// allow_loopback lets the loopback name through, to the echo origin.
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{dns: {name: loop.test, port: "`+ps+`", allow_loopback: true}}`), withResolver(res))
	c := dial(t, addr)
	defer c.Close()
	if e := rec.Next(t); e.Type != event.Connect {
		t.Fatalf("with allow_loopback: %s %d (%s), want connect", e.Type, e.Status, e.Detail)
	}
	// A literal origin in another IPv6 form of the metadata address.
	_, rec, addr = startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["[::169.254.169.254]:80"]}`))
	c2 := dial(t, addr)
	defer c2.Close()
	if e := rec.Next(t); e.Type != event.ResolveOrigin || e.Status != event.StatusResolveBlocked {
		t.Fatalf("literal [::169.254.169.254]: %s %d (%s), want resolveOrigin 532", e.Type, e.Status, e.Detail)
	}
}
