package udpproxy

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// startDnsmasq runs a real DNS server on its own port of 127.0.0.1 that
// answers test.example with 192.0.2.1.
func startDnsmasq(t *testing.T) netip.AddrPort {
	bin := testpeer.Need(t, "dnsmasq")
	port := testpeer.FreePort(t) // dnsmasq binds TCP and UDP on the same port
	p := testpeer.Start(t, bin, "-k", fmt.Sprintf("-p%d", port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--address=/test.example/192.0.2.1", "--conf-file=/dev/null",
		"--pid-file="+filepath.Join(t.TempDir(), "dnsmasq.pid"), "--user=root", "--log-facility=-")
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	p.WaitTCP(t, addr.String(), waitFor) // UDP is bound before TCP
	return addr
}

func digArgs(to netip.AddrPort, extra ...string) []string {
	return append([]string{"@" + to.Addr().String(), "-p", fmt.Sprint(to.Port()), "+tries=1", "+time=3"}, extra...)
}

// A real DNS client (dig) through prism to a real DNS server (dnsmasq).
func TestDigThroughProxyToDnsmasq(t *testing.T) {
	dig := testpeer.Need(t, "dig")
	dns := startDnsmasq(t)
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, dns.String())}, em, nil)
	out, err := testpeer.Run(t, 10*time.Second, dig, digArgs(addrOf(s, 0), "+short", "test.example", "A")...)
	if err != nil || strings.TrimSpace(out) != "192.0.2.1" {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	// Over TCP-less UDP, several queries are several sessions (dig
	// uses a fresh source port each time).
	out, err = testpeer.Run(t, 10*time.Second, dig, digArgs(addrOf(s, 0), "test.example", "A")...)
	if err != nil || !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "192.0.2.1") {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	c1, c2 := em.NextOf(t, event.Connect), em.NextOf(t, event.Connect)
	if c1.SessionID == c2.SessionID || c1.OriginAddr != dns {
		t.Fatalf("sessions %v %v origin %v", c1.SessionID, c2.SessionID, c1.OriginAddr)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d := em.NextOf(t, event.Disconnect)
		// One query and one answer: a DNS header is 12 bytes, the
		// answer longer than the query.
		if d.ClientBytes < 12 || d.OriginBytes <= d.ClientBytes || d.CloseReason != event.ReasonClosed {
			t.Fatalf("disconnect bytes client %d origin %d reason %v", d.ClientBytes, d.OriginBytes, d.CloseReason)
		}
	}
}

// nginx stream as a trusted front proxy: it sends PROXY v1 on UDP, and
// prism must attribute the session to nginx's client.
func TestNginxFrontSendsProxyV1(t *testing.T) {
	bin := testpeer.Need(t, "nginx")
	mod := testpeer.NeedFile(t, "/usr/lib/nginx/modules/ngx_stream_module.so", "nginx stream module")
	o := testpeer.StartUDPEcho(t, "")
	em := newCollector()
	s := startServer(t, App{Pool: staticPool(t, o.Addr().String()),
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, em, nil)
	port := testpeer.FreeUDPPort(t)
	dir := t.TempDir()
	conf := testpeer.WriteFile(t, "nginx.conf", fmt.Sprintf(`
load_module %s;
daemon off;
master_process off;
pid %s/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
stream {
    server {
        listen 127.0.0.1:%d udp;
        proxy_pass %s;
        proxy_protocol on;
        proxy_timeout 5s;
    }
}
`, mod, dir, port, addrOf(s, 0)))
	p := testpeer.Start(t, bin, "-c", conf, "-e", "stderr", "-p", dir)
	front := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	c := dial(t, front)
	client := c.LocalAddr().(*net.UDPAddr).AddrPort()
	// nginx gives no readiness signal for a UDP listener: retry the first
	// datagram until it answers.
	deadline := time.Now().Add(waitFor)
	buf := make([]byte, 256)
	for {
		if exited, err := p.Exited(); exited {
			t.Fatalf("nginx exited: %v\n%s", err, p.Output())
		}
		_, _ = c.Write([]byte("first"))
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			if string(buf[:n]) != "first" {
				t.Fatalf("reply %q", buf[:n])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reply through nginx\n%s", p.Output())
		}
	}
	if got := roundTrip(t, c, "second"); got != "second" {
		t.Fatalf("reply %q", got)
	}
	con := em.NextOf(t, event.Connect)
	if con.ClientAddr != client || con.PeerAddr == client || con.PeerAddr.Addr() != front.Addr() {
		t.Fatalf("client %v (want %v) peer %v", con.ClientAddr, client, con.PeerAddr)
	}
	for _, got := range []string{string(<-o.Got), string(<-o.Got)} {
		if strings.HasPrefix(got, "PROXY") {
			t.Fatalf("inbound header leaked to the origin: %q", got)
		}
	}
	if n := em.CountOf(event.Connect); n != 1 {
		t.Fatalf("%d sessions for one nginx flow", n)
	}
}
