package proxy_test

// The UDP side of the spec §7 corners: a firewall refusal of a real DNS
// client (dig) through the whole daemon, rendered in all three datasets.

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
)

// TestUDPFirewallRefusalRecords: dig → prism (UDP app, client blocked) →
// one clientFiltered record: Spectrum OriginProto udp (§7.3, no origin was
// chosen), EdgeOne down:net_exception_closed (§7.5) with the first
// datagram's time as ConnectTimeStamp (§7.4), CloudConnexa a refused UDP
// flow (protocol 17).
func TestUDPFirewallRefusalRecords(t *testing.T) {
	dig := testpeer.Need(t, "dig")
	yml := fmt.Sprintf(`node: {colo: TST, id: t1}
apps:
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:%d"]}
    ip_firewall: {rules: [{action: block, cidr: 127.0.0.0/8}]}
`, testpeer.FreeUDPPort(t))
	rec := eventtest.New()
	d, _ := runDaemon(t, yml, rec)
	port := d.Addrs("dns")[0].(*net.UDPAddr).Port
	if out, err := testpeer.Run(t, 10*time.Second, dig, "@127.0.0.1", "-p", fmt.Sprint(port), "+tries=1", "+time=1", "test.example", "A"); err == nil {
		t.Fatalf("dig got an answer through a firewall that blocks it:\n%s", out)
	}
	e := nextOfApp(t, rec, "dns", event.ClientFiltered)
	sp := renderJSON(t, render.Spectrum, &e)
	for k, w := range map[string]any{"Event": "clientFiltered", "Status": 403.0, "ClientProto": "udp", "OriginProto": "udp",
		"ClientTcpRtt": 0.0, "ClientMatchedIpFirewall": "BLOCK_IP"} {
		if sp[k] != w {
			t.Errorf("Spectrum %s = %v, want %v", k, sp[k], w)
		}
	}
	eo := renderJSON(t, render.EdgeOne, &e)
	for k, w := range map[string]any{"DisconnetReason": "down:net_exception_closed", "ForwardProtocol": "UDP",
		"ConnectTimeStamp": e.StartTime.UTC().Format("2006-01-02T15:04:05Z")} {
		if eo[k] != w {
			t.Errorf("EdgeOne %s = %v, want %v", k, eo[k], w)
		}
	}
	cc := renderJSON(t, render.CloudConnexa, &e)
	l, _ := cc["log"].(map[string]any)
	if cc["eventName"] != "flow-established" || l["allowed"] != false || l["protocol"] != 17.0 || l["protocolName"] != "udp" {
		t.Errorf("CloudConnexa %v log %v; want a refused udp flow", cc["eventName"], l)
	}
}
