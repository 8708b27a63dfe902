package proxy_test

// Origin resolution against a real DNS server: dnsmasq answers good.test
// with 127.0.0.1, missing.test with NXDOMAIN, meta.test with the cloud
// metadata address (in the default origin_block list), and refuses every
// other name (no upstream). Each answer must end as docs/config.md says:
// a connection, or a resolveOrigin record 531 / 532 / 530.

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// startDnsmasq runs dnsmasq on a loopback port of its own and returns a
// resolver that sends every query there.
func startDnsmasq(t *testing.T) *net.Resolver {
	t.Helper()
	port := testpeer.FreePort(t)
	testpeer.Dnsmasq(t, port, "/good.test/127.0.0.1", "/missing.test/", "/meta.test/169.254.169.254")
	return resolverFor("127.0.0.1:" + strconv.Itoa(port))
}

// resolverFor sends every query to the DNS server at addr.
func resolverFor(server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

func TestResolveOriginDnsmasq(t *testing.T) {
	res := startDnsmasq(t)
	origin := testpeer.Echo(t)
	_, port := hostPort(t, origin)
	ps := strconv.Itoa(port)

	for _, tc := range []struct {
		name     string
		typ      event.Type
		status   int
		originIP string // rendered OriginIP
	}{
		{"good.test", event.Connect, event.StatusConnect, "127.0.0.1"},
		{"missing.test", event.ResolveOrigin, event.StatusResolveFailed, ""},
		{"meta.test", event.ResolveOrigin, event.StatusResolveBlocked, "169.254.169.254"},
		{"refused.example", event.ResolveOrigin, event.StatusResolveInternal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{dns: {name: `+tc.name+`, port: "`+ps+`", allow_loopback: true}}`), withResolver(res))
			c := dial(t, addr)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			e := rec.Next(t)
			if e.Type != tc.typ || e.Status != tc.status {
				t.Fatalf("got %s %d (%s), want %s %d", e.Type, e.Status, e.Detail, tc.typ, tc.status)
			}
			want := map[string]any{"Event": tc.typ.String(), "Status": tc.status, "OriginIP": tc.originIP}
			if tc.originIP != "" {
				want["OriginPort"] = port
			}
			wantSpectrum(t, &e, want)
			if tc.typ == event.Connect {
				if e.OriginName != tc.name {
					t.Errorf("OriginName %q, want %q", e.OriginName, tc.name)
				}
				c.Write([]byte("dns"))
				b := make([]byte, 3)
				if _, err := io.ReadFull(c, b); err != nil || string(b) != "dns" {
					t.Fatalf("echo via resolved origin: %q %v", b, err)
				}
				c.Close()
				d := rec.Expect(t, event.Disconnect, event.StatusOK)
				wantSpectrum(t, &d, map[string]any{"OriginIP": "127.0.0.1", "OriginPort": port, "ClientBytes": 3, "OriginBytes": 3})
				return
			}
			t.Logf("%s: %s", tc.name, e.Detail)
			if e.CloseSide != event.SideOrigin || e.CloseReason != event.ReasonCreatePeer {
				t.Errorf("cause %s/%s", e.CloseSide, e.CloseReason)
			}
			// The client is closed without a byte.
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("client still open after a resolve failure (read %d bytes)", n)
			}
		})
	}
}
