package proxy_test

// PROXY protocol against real peers: HAProxy (accept-proxy) and nginx
// (listen ... proxy_protocol) as origins prove that the v1 and v2 headers
// prism writes parse in the two most common implementations; HAProxy in
// front of prism (send-proxy, send-proxy-v2) proves that prism reads them
// and logs the real client, not the load balancer. Untrusted peers are not
// parsed at all; a trusted peer that sends garbage or nothing, and health
// checks, are in corners_e2e_test.go.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/testpeer"
)

// proxiedEcho is a Go server that expects a PROXY header on every
// connection, reports the source and destination addresses it carries
// ("src dst"), and echoes the rest.
func proxiedEcho(t *testing.T) (string, <-chan string) {
	t.Helper()
	srcs := make(chan string, 16)
	addr := testpeer.Serve(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil {
			srcs <- "error: " + err.Error()
			return
		}
		srcs <- h.SourceAddr.String() + " " + h.DestinationAddr.String()
		_, _ = io.Copy(c, br)
	})
	return addr, srcs
}

// nextHeader returns the next "src dst" a proxiedEcho reported.
func nextHeader(t *testing.T, srcs <-chan string) string {
	t.Helper()
	select {
	case s := <-srcs:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the PROXY-reading origin saw no connection")
	}
	return ""
}

// TestProxyProtocolToHAProxy: client → prism (proxy_protocol v1/v2) →
// HAProxy (accept-proxy) → Go server (HAProxy's own send-proxy-v2). The
// source HAProxy passes on is the one prism wrote: the client's address.
func TestProxyProtocolToHAProxy(t *testing.T) {
	backend, srcs := proxiedEcho(t)
	front := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	startHAProxy(t, fmt.Sprintf(`frontend fe
  bind %s accept-proxy
  default_backend be
backend be
  server go %s send-proxy-v2
`, front, backend), front)

	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+front+`"]}`, "proxy_protocol: "+v))
			c := dial(t, addr)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := []byte("through haproxy " + v)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
				t.Fatalf("echo through HAProxy: %q %v", got, err)
			}
			// Source: the client; destination: the edge address that accepted it.
			if got, want := nextHeader(t, srcs), c.LocalAddr().String()+" "+addr; got != want {
				t.Fatalf("HAProxy passed on %q, want %q (client, prism listener)", got, want)
			}
			conn := rec.Expect(t, event.Connect, 0)
			wantSpectrum(t, &conn, map[string]any{"Event": "connect", "ProxyProtocol": v})
			c.Close()
			d := rec.Expect(t, event.Disconnect, event.StatusOK)
			wantSpectrum(t, &d, map[string]any{"Event": "disconnect", "Status": 200, "ProxyProtocol": v,
				"ClientBytes": len(msg), "OriginBytes": len(msg)})
		})
	}
}

// startNginxStreamOrigin runs nginx with a stream server that answers every
// connection with the client address from its PROXY header.
func startNginxStreamOrigin(t *testing.T) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	testpeer.NginxStream(t, `server {
  listen `+addr+` proxy_protocol;
  return "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port";
}`, addr)
	return addr
}

// TestProxyProtocolToNginx: nginx's $proxy_protocol_addr:$proxy_protocol_port
// is the client as prism saw it, for v1 and v2, over IPv4 and IPv6 clients
// (an IPv6 client to an IPv4 origin makes a TCP6 header).
func TestProxyProtocolToNginx(t *testing.T) {
	origin := startNginxStreamOrigin(t)
	for _, tc := range []struct{ v, listen string }{
		{"v1", "127.0.0.1:0"}, {"v2", "127.0.0.1:0"},
		{"v1", "[::1]:0"}, {"v2", "[::1]:0"},
	} {
		t.Run(tc.v+" "+tc.listen, func(t *testing.T) {
			if tc.listen[0] == '[' {
				if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
					t.Skip("no IPv6 loopback")
				} else {
					ln.Close()
				}
			}
			_, rec, addr := startProxy(t, appYAML(tc.listen, `{addresses: ["`+origin+`"]}`, "proxy_protocol: "+tc.v))
			c := dial(t, addr)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			ap := c.LocalAddr().(*net.TCPAddr).AddrPort()
			edge := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			want := ap.Addr().String() + ":" + strconv.Itoa(int(ap.Port())) + " " +
				edge.Addr().String() + ":" + strconv.Itoa(int(edge.Port()))
			if string(got) != want {
				t.Fatalf("nginx read client and server as %q, want %q", got, want)
			}
			c.Close() // nginx closed its side; prism keeps the client→origin half open until the client closes too
			rec.Expect(t, event.Connect, 0)
			d := rec.Expect(t, event.Disconnect, event.StatusOK)
			wantSpectrum(t, &d, map[string]any{"ProxyProtocol": tc.v, "ClientIP": ap.Addr().String(),
				"ClientPort": ap.Port(), "OriginBytes": len(want)})
		})
	}
}

// TestInboundProxyFromHAProxy: HAProxy in front of prism with send-proxy
// and send-proxy-v2. The client dials HAProxy from 127.0.0.2, HAProxy
// dials prism from 127.0.0.1 (trusted): the record's client is 127.0.0.2
// with the client's port, the socket peer is HAProxy, and the PROXY v2
// header prism sends on to its origin carries the real client too.
func TestInboundProxyFromHAProxy(t *testing.T) {
	for _, send := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(send, func(t *testing.T) {
			origin, headers := proxiedEcho(t)
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
				`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 2s}`, "proxy_protocol: v2"))
			front := "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
			startHAProxy(t, fmt.Sprintf(`frontend fe
  bind %s
  default_backend be
backend be
  server prism %s %s
`, front, addr, send), front)

			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
			nc, err := d.Dial("tcp", front)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			c := nc.(*net.TCPConn)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := []byte("hello through haproxy\n")
			c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
				t.Fatalf("echo: %q %v", got, err)
			}
			client := proxy.AddrPortOf(c.LocalAddr())
			for { // HAProxy's readiness probe may have reached the origin first
				h := nextHeader(t, headers)
				if strings.HasPrefix(h, "127.0.0.1:") {
					continue
				}
				if want := client.String() + " " + addr; h != want {
					t.Fatalf("origin got PROXY header %q, want %q (real client, prism listener)", h, want)
				}
				break
			}
			conn := rec.WaitFor(t, "connect from "+client.String(), func(e *event.Event) bool {
				return e.Type == event.Connect && e.ClientAddr == client
			})
			if conn.PeerAddr.Addr() != netip.MustParseAddr("127.0.0.1") || conn.PeerAddr == conn.ClientAddr {
				t.Fatalf("peer %v client %v: the peer must be HAProxy on 127.0.0.1", conn.PeerAddr, conn.ClientAddr)
			}
			wantSpectrum(t, &conn, map[string]any{"Event": "connect", "ClientIP": "127.0.0.2", "ClientPort": client.Port()})
			c.Close()
			disc := rec.WaitFor(t, "disconnect of the session", func(e *event.Event) bool {
				return e.Type.Terminal() && e.SessionID == conn.SessionID
			})
			wantSpectrum(t, &disc, map[string]any{"Event": "disconnect", "Status": 200, "ClientIP": "127.0.0.2",
				"ClientPort": client.Port(), "ClientBytes": len(msg), "OriginBytes": len(msg)})
		})
	}
}

// captureServer reads each connection to EOF and reports what it received.
func captureServer(t *testing.T) (string, <-chan []byte) {
	t.Helper()
	got := make(chan []byte, 16)
	addr := testpeer.Serve(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	})
	return addr, got
}

// TestInboundProxyUntrustedNotParsed: a client outside trusted_cidrs that
// sends a PROXY header cannot spoof its address: prism does not read the
// header, the bytes reach the origin verbatim, the record names the socket
// peer.
func TestInboundProxyUntrustedNotParsed(t *testing.T) {
	spoofed := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 1111},
		&net.TCPAddr{IP: net.IPv4(5, 6, 7, 8), Port: 2222})
	v2, err := spoofed.Format()
	if err != nil {
		t.Fatal(err)
	}
	origin, received := captureServer(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["10.9.0.0/16"]}`))
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"v1", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello")},
		{"v2", append(v2, "hello"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.Write(tc.send)
			c.CloseWrite()
			select {
			case b := <-received:
				if string(b) != string(tc.send) {
					t.Fatalf("origin received %q, want the header verbatim %q", b, tc.send)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("origin received nothing")
			}
			conn := rec.Expect(t, event.Connect, 0)
			if conn.ClientAddr != proxy.AddrPortOf(c.LocalAddr()) {
				t.Fatalf("client %v, want the socket peer %v", conn.ClientAddr, c.LocalAddr())
			}
			d := rec.Expect(t, event.Disconnect, event.StatusOK)
			wantSpectrum(t, &d, map[string]any{"ClientIP": "127.0.0.1", "ClientPort": conn.ClientAddr.Port(),
				"ClientBytes": len(tc.send)})
		})
	}
}

// TestInboundProxyV2UDPFamilyOverTCP: a trusted front's PROXY v2 header
// of a UDP family (DGRAM) on a TCP connection names the client, as the
// same header does on a UDP app. prism read only TCP families over TCP,
// and silently took the front for the client: the firewall, the limits
// and the records saw the front's address.
func TestInboundProxyV2UDPFamilyOverTCP(t *testing.T) {
	client := netip.MustParseAddrPort("198.51.100.7:4000")
	v2, err := proxyproto.HeaderProxyFromAddrs(2, net.UDPAddrFromAddrPort(client),
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}).Format()
	if err != nil {
		t.Fatal(err)
	}
	if v2[13] != byte(proxyproto.UDPv4) {
		t.Fatalf("family byte %#x, want UDP over IPv4", v2[13])
	}
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.Echo(t)+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"], header_timeout: 2s}`))
	c := dial(t, addr)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(v2, "hello"...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("hello"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q %v", got, err)
	}
	conn := rec.Expect(t, event.Connect, 0)
	if conn.ClientAddr != client || conn.PeerAddr != proxy.AddrPortOf(c.LocalAddr()) {
		t.Fatalf("client %v peer %v, want client %v (the header's) and the front as peer", conn.ClientAddr, conn.PeerAddr, client)
	}
	wantSpectrum(t, &conn, map[string]any{"Event": "connect", "ClientIP": "198.51.100.7", "ClientPort": 4000})
}
