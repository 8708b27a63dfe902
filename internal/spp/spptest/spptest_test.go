package spptest

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/spp"
)

func TestEchoOrigin(t *testing.T) {
	o := Start(t)
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(o.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, proxy := netip.MustParseAddrPort("192.0.2.7:4444"), netip.MustParseAddrPort("[2001:db8::9]:53")
	if _, err := c.Write(append(spp.AppendHeader(nil, client, proxy), "ping"...)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("no header at all, long enough to be 38 bytes or more")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	gc, gp, p, err := spp.Parse(buf[:n])
	if err != nil || gc != client || gp != proxy || string(p) != "ping" {
		t.Fatalf("echo: %v %v %q %v", gc, gp, p, err)
	}
	s := <-o.C()
	if s.Client != client || s.Proxy != proxy || s.Payload != "ping" {
		t.Fatalf("seen %+v", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.Bad() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the bad datagram has no reply to wait for
	}
	if o.Bad() != 1 {
		t.Fatalf("bad = %d, want 1", o.Bad())
	}
}
