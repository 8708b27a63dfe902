package testpeer

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestDnsmasqAnswersItsRules: a name with a rule resolves to its address,
// a "/name/" rule is NXDOMAIN.
func TestDnsmasqAnswersItsRules(t *testing.T) {
	port := FreePort(t)
	Dnsmasq(t, port, "/a.test/192.0.2.7", "/gone.test/")
	server := "127.0.0.1:" + strconv.Itoa(port)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := r.LookupHost(ctx, "a.test")
	if err != nil || len(ips) != 1 || ips[0] != "192.0.2.7" {
		t.Fatalf("a.test: %v %v", ips, err)
	}
	if ips, err := r.LookupHost(ctx, "gone.test"); err == nil {
		t.Fatalf("gone.test resolved to %v", ips)
	}
}
