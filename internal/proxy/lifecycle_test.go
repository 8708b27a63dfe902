package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/testpeer"
)

func TestConnectAndNormalDisconnect(t *testing.T) {
	origin := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	c := dial(t, addr)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
	conn := rec.Expect(t, event.Connect, event.StatusConnect)
	if conn.ClientAddr.String() != c.LocalAddr().String() || conn.OriginAddr.String() != origin {
		t.Fatalf("connect addresses: client %v origin %v", conn.ClientAddr, conn.OriginAddr)
	}
	if conn.ConnectTime.IsZero() || conn.ClientProto != "tcp" || conn.OriginProto != "tcp" {
		t.Fatalf("connect record: %+v", conn)
	}
	cip, cport := hostPort(t, c.LocalAddr().String())
	oip, oport := hostPort(t, origin)
	wantSpectrum(t, &conn, map[string]any{"Event": "connect", "Status": 0, "ClientIP": cip, "ClientPort": cport,
		"OriginIP": oip, "OriginPort": oport, "ClientProto": "tcp", "OriginProto": "tcp", "ProxyProtocol": "off",
		"Application": "app", "ColoCode": "TST", "ClientBytes": 0, "OriginBytes": 0})
	c.Close()
	d := rec.Expect(t, event.Disconnect, event.StatusOK)
	if d.SessionID != conn.SessionID {
		t.Fatal("disconnect carries another SessionID")
	}
	if d.ClientBytes != 5 || d.OriginBytes != 5 {
		t.Fatalf("bytes client=%d origin=%d, want 5/5", d.ClientBytes, d.OriginBytes)
	}
	if d.CloseSide != event.SideClient || d.CloseReason != event.ReasonPeerClose {
		t.Fatalf("close cause %s/%s", d.CloseSide, d.CloseReason)
	}
	if d.ClientRTT <= 0 || d.OriginRTT <= 0 {
		t.Fatalf("RTT not sampled: client %v origin %v", d.ClientRTT, d.OriginRTT)
	}
	m := wantSpectrum(t, &d, map[string]any{"Event": "disconnect", "Status": 200, "ClientIP": cip, "ClientPort": cport,
		"OriginIP": oip, "OriginPort": oport, "ClientBytes": 5, "OriginBytes": 5})
	if m["DisconnectTimestamp"].(float64) < m["ConnectTimestamp"].(float64) {
		t.Errorf("DisconnectTimestamp %v before ConnectTimestamp %v", m["DisconnectTimestamp"], m["ConnectTimestamp"])
	}
}

func TestHalfCloseKeepsOtherDirection(t *testing.T) {
	// The origin reads until EOF, then answers: it only can if the client's
	// FIN was propagated while the origin→client direction stayed open.
	origin := testpeer.Serve(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		_, _ = c.Write([]byte("got " + string(b)))
	})
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	c := dial(t, addr)
	c.Write([]byte("abc"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got abc" {
		t.Fatalf("reply %q %v", got, err)
	}
	rec.Expect(t, event.Connect, 0)
	d := rec.Expect(t, event.Disconnect, event.StatusOK)
	if d.ClientBytes != 3 || d.OriginBytes != 7 {
		t.Fatalf("bytes %d/%d", d.ClientBytes, d.OriginBytes)
	}
	wantSpectrum(t, &d, map[string]any{"Event": "disconnect", "Status": 200, "ClientBytes": 3, "OriginBytes": 7})
}

func TestOriginRefused521(t *testing.T) {
	closed := testpeer.ClosedPort(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+closed+`"]}`))
	c := dial(t, addr)
	e := rec.Expect(t, event.OriginError, event.StatusOriginConnRefused)
	if e.OriginAddr.String() != closed || e.CloseReason != event.ReasonCreatePeer {
		t.Fatalf("origin error record: %+v", e)
	}
	oip, oport := hostPort(t, closed)
	cip, cport := hostPort(t, c.LocalAddr().String())
	wantSpectrum(t, &e, map[string]any{"Event": "originError", "Status": 521, "OriginIP": oip, "OriginPort": oport,
		"ClientIP": cip, "ClientPort": cport, "ClientBytes": 0, "OriginBytes": 0})
	// The client is closed.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client still open")
	}
}

func TestFailoverToNextOrigin(t *testing.T) {
	good := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+testpeer.ClosedPort(t)+`", "`+good+`"], balance: round_robin}`))
	for range 2 { // whichever the balancer picks first, the connection reaches the live origin
		c := dial(t, addr)
		e := rec.Expect(t, event.Connect, 0)
		if e.OriginAddr.String() != good {
			t.Fatalf("connected to %v, want %v", e.OriginAddr, good)
		}
		c.Close()
		rec.Terminal(t)
	}
}

// listenBacklog0 is a loopback listening socket with backlog 0 (its
// accept queue holds one connection), closed at the end of the test.
func listenBacklog0(t *testing.T) (fd, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	return fd, sa.(*syscall.SockaddrInet4).Port
}

// fullBacklog returns a listener address whose accept queue is full, so
// that a further SYN is dropped and a connect times out.
func fullBacklog(t *testing.T) string {
	t.Helper()
	_, port := listenBacklog0(t)
	addr := net.JoinHostPort("127.0.0.1", itoa(port))
	// Fill the queue: with backlog 0 the kernel queues one connection.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full: this dial already timed out
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen backlog on this kernel")
	return ""
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestOriginConnectTimeout522(t *testing.T) {
	target := fullBacklog(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+target+`"]}`, "timeouts: {connect: 300ms}"))
	dial(t, addr)
	e := rec.Expect(t, event.OriginError, event.StatusOriginConnTimeout)
	oip, oport := hostPort(t, target)
	wantSpectrum(t, &e, map[string]any{"Event": "originError", "Status": 522, "OriginIP": oip, "OriginPort": oport})
}

func TestOriginBlocked532(t *testing.T) {
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{dns: {name: localhost, port: "80"}}`,
		`origin_block: ["127.0.0.0/8", "::1/128"]`))
	dial(t, addr)
	e := rec.Expect(t, event.ResolveOrigin, event.StatusResolveBlocked)
	if !e.OriginAddr.Addr().IsLoopback() {
		t.Fatalf("blocked origin address not recorded: %v", e.OriginAddr)
	}
	wantSpectrum(t, &e, map[string]any{"Event": "resolveOrigin", "Status": 532,
		"OriginIP": e.OriginAddr.Addr().String(), "OriginPort": 80})
}

func TestOriginReset444(t *testing.T) {
	origin := testpeer.Serve(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST
	})
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	c := dial(t, addr)
	rec.Expect(t, event.Connect, 0)
	c.Write([]byte("x"))
	e := rec.Expect(t, event.Disconnect, event.StatusOriginReset)
	if e.CloseSide != event.SideOrigin || e.CloseReason != event.ReasonPeerError {
		t.Fatalf("cause %s/%s", e.CloseSide, e.CloseReason)
	}
	oip, oport := hostPort(t, origin)
	wantSpectrum(t, &e, map[string]any{"Event": "disconnect", "Status": 444, "OriginIP": oip, "OriginPort": oport, "ClientBytes": 1})
}

func TestClientReset499(t *testing.T) {
	origin := testpeer.Sink(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	c := dial(t, addr)
	rec.Expect(t, event.Connect, 0)
	c.SetLinger(0)
	c.Close()
	e := rec.Expect(t, event.Disconnect, event.StatusClientReset)
	if e.CloseSide != event.SideClient {
		t.Fatalf("side %s", e.CloseSide)
	}
	cip, cport := hostPort(t, c.LocalAddr().String())
	wantSpectrum(t, &e, map[string]any{"Event": "disconnect", "Status": 499, "ClientIP": cip, "ClientPort": cport})
}

func TestIdleTimeout(t *testing.T) {
	origin := testpeer.Sink(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`, "timeouts: {idle: 300ms}"))
	c := dial(t, addr)
	c.Write([]byte("abcd"))
	rec.Expect(t, event.Connect, 0)
	e := rec.Expect(t, event.Disconnect, event.StatusOK)
	if e.CloseSide != event.SideProxy || e.CloseReason != event.ReasonTimeout {
		t.Fatalf("cause %s/%s", e.CloseSide, e.CloseReason)
	}
	if d := e.DisconnectTime.Sub(e.ConnectTime); d < 300*time.Millisecond {
		t.Errorf("closed after %v, before the 300ms idle timeout", d)
	}
	wantSpectrum(t, &e, map[string]any{"Event": "disconnect", "Status": 200, "ClientBytes": 4, "OriginBytes": 0})
}

// TestShutdownWhileDialing: a connection whose origin dial is still in
// progress at the drain deadline is cut there (on the raw path the dial
// waits in an event loop and the session's stop wakes it), with its
// terminal record.
func TestShutdownWhileDialing(t *testing.T) {
	target := fullBacklog(t)
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+target+`"]}`, "timeouts: {connect: 30s}"))
	dial(t, addr)
	for end := time.Now().Add(5 * time.Second); proxy.Tracked(s) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the connection was not taken within 5s")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v: the dial was not cut at the drain deadline", d)
	}
	e, ok := rec.NextWithin(0)
	if !ok {
		t.Fatal("Shutdown returned before the terminal record")
	}
	if e.Type != event.OriginError || e.CloseSide != event.SideProxy || !strings.Contains(e.Detail, "shutdown while dialing") {
		t.Fatalf("got %s %d %s %q", e.Type, e.Status, e.CloseSide, e.Detail)
	}
}

// TestRawPathOnlyForPlainApps: a plain TCP app takes its connections as
// raw sockets (relay.Sock); one that reads them first (TLS, an inbound
// PROXY header) keeps net.Conns.
func TestRawPathOnlyForPlainApps(t *testing.T) {
	origin := testpeer.Sink(t)
	want := 0
	if relay.SocksAvailable() {
		want = 1
	}
	s, _, _ := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	if n := proxy.RawListeners(s); n != want {
		t.Errorf("plain app: %d raw listeners, want %d", n, want)
	}
	s, _, _ = startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		`inbound_proxy_protocol: {trusted_cidrs: ["127.0.0.1/32"]}`))
	if n := proxy.RawListeners(s); n != 0 {
		t.Errorf("app with trusted fronts: %d raw listeners, want 0", n)
	}
}

func TestShutdownDrainsThenCloses(t *testing.T) {
	origin := testpeer.Sink(t)
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
	dial(t, addr)
	rec.Expect(t, event.Connect, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returned only after the terminal record was emitted.
	e, ok := rec.NextWithin(0)
	if !ok {
		t.Fatal("Shutdown returned before the terminal record")
	}
	if e.Type != event.Disconnect || e.Status != event.StatusOK || e.CloseReason != event.ReasonClosed || e.CloseSide != event.SideProxy {
		t.Fatalf("got %s %d %s/%s", e.Type, e.Status, e.CloseSide, e.CloseReason)
	}
	wantSpectrum(t, &e, map[string]any{"Event": "disconnect", "Status": 200})
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestUnixListenerAndOrigin(t *testing.T) {
	dir := t.TempDir()
	originPath := filepath.Join(dir, "origin.sock")
	testpeer.EchoUnix(t, originPath)
	front := filepath.Join(dir, "front.sock")
	_, rec, _ := startProxy(t, appYAML("unix:"+front, `{addresses: ["unix:`+originPath+`"]}`))
	c, err := net.Dial("unix", front)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(c, buf)
	c.Close()
	e := rec.Expect(t, event.Connect, 0)
	if e.ClientProto != "unix" || e.OriginProto != "unix" || e.OriginPath != originPath {
		t.Fatalf("protos %s/%s %s", e.ClientProto, e.OriginProto, e.OriginPath)
	}
	d := rec.Expect(t, event.Disconnect, event.StatusOK)
	if d.ClientBytes != 4 || d.OriginBytes != 4 {
		t.Fatalf("bytes %d/%d", d.ClientBytes, d.OriginBytes)
	}
	if _, err := os.Stat(front); err != nil {
		t.Fatal(err)
	}
}

func TestPortRangeMapsByOffset(t *testing.T) {
	// Two origin listeners on consecutive ports, and a two-port edge range.
	origins := listenPair(t)
	for i, ln := range origins {
		testpeer.ServeListener(t, ln, func(c net.Conn) { c.Write([]byte{byte('A' + i)}) })
	}
	lo := origins[0].Addr().(*net.TCPAddr).Port
	ep := freePortPair(t)
	_, rec, _ := startProxy(t, appYAML("127.0.0.1:"+itoa(ep)+"-"+itoa(ep+1),
		`{addresses: ["127.0.0.1:`+itoa(lo)+`-`+itoa(lo+1)+`"]}`))
	for i := range 2 {
		c := dial(t, "127.0.0.1:"+itoa(ep+i))
		b, err := bufio.NewReader(c).ReadByte()
		if err != nil || b != byte('A'+i) {
			t.Fatalf("edge port +%d reached origin %q (%v)", i, b, err)
		}
		rec.Expect(t, event.Connect, 0)
		c.Close() // the origin already closed; end the client→origin half too
		rec.Terminal(t)
	}
}

// freePortPair returns p such that p and p+1 were both free on 127.0.0.1 a
// moment ago (checked by binding both; a single closed port says nothing
// about its neighbour, which another test's peer may hold).
// listenPair listens on two consecutive loopback ports. It tries 20 pairs:
// with the other tests of the package running beside it, the port after a
// free one is often taken, and one try made the test skip in the suite.
func listenPair(t *testing.T) []net.Listener {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+itoa(a.Addr().(*net.TCPAddr).Port+1))
		if err == nil {
			return []net.Listener{a, b}
		}
		a.Close()
	}
	t.Skip("no two consecutive free ports in 20 tries")
	return nil
}

func freePortPair(t *testing.T) int {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", "127.0.0.1:"+itoa(p+1))
		a.Close()
		if err == nil {
			b.Close()
			return p
		}
	}
	t.Skip("no two consecutive free ports")
	return 0
}

func TestMaxConnectionsQueuesAndShutdownStillDrains(t *testing.T) {
	origin := testpeer.Sink(t)
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`, "max_connections: 1"))
	first := dial(t, addr)
	rec.Expect(t, event.Connect, 0)
	// The second client completes the TCP handshake (kernel backlog) but is
	// not accepted while the first holds the only slot.
	second := dial(t, addr)
	second.Write([]byte("x"))
	// Absence of an event: nothing to wait on but time.
	if e, ok := rec.NextWithin(200 * time.Millisecond); ok {
		t.Fatalf("second connection was handled at the limit: %s %d", e.Type, e.Status)
	}
	first.Close()
	rec.Expect(t, event.Disconnect, event.StatusOK)
	rec.Expect(t, event.Connect, 0) // the slot freed, the queued client goes through
	// Shutdown must not hang on an accept loop waiting for a slot.
	third := dial(t, addr)
	_ = third
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown hung with an accept loop at max_connections")
	}
	e := rec.Expect(t, event.Disconnect, event.StatusOK)
	if e.CloseReason != event.ReasonClosed {
		t.Fatalf("reason %s", e.CloseReason)
	}
}

// TestUnixOriginDialErrors: an origin unix socket path with nothing behind
// it is "refused" (521); a path through a regular file fails with ENOTDIR,
// another system error (524). Both end as originError records naming the
// path, with no OriginIP.
func TestUnixOriginDialErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"missing socket", filepath.Join(dir, "gone.sock"), event.StatusOriginConnRefused},
		{"ENOTDIR", filepath.Join(file, "origin.sock"), event.StatusOriginConnInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["unix:`+tc.path+`"]}`))
			dial(t, addr)
			e := rec.Expect(t, event.OriginError, tc.status)
			if e.OriginPath != tc.path || e.OriginProto != event.ProtoUnix {
				t.Fatalf("origin %s %q, want unix %q", e.OriginProto, e.OriginPath, tc.path)
			}
			wantSpectrum(t, &e, map[string]any{"Event": "originError", "Status": tc.status, "OriginProto": "unix", "OriginIP": ""})
		})
	}
}

// TestOriginSlowToConnect: an origin that does not answer at once (its
// accept queue is full, so the first SYN is dropped and the connection
// completes on the retransmit about a second later), as a remote origin
// does not: the dial waits (on the raw path in a relay event loop, not
// in connect(2)) and the connection then relays as any other. Meanwhile
// the listener keeps accepting: an accept loop that handles connections
// itself (one P) hands accepting on before it waits.
func TestOriginSlowToConnect(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			defer proxy.SetInlineHandlers(inline)()
			testOriginSlowToConnect(t)
		})
	}
}

func testOriginSlowToConnect(t *testing.T) {
	fd, port := listenBacklog0(t)
	target := net.JoinHostPort("127.0.0.1", itoa(port))
	filler, err := net.DialTimeout("tcp", target, time.Second) // fills the queue of one
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()

	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+target+`"]}`, "timeouts: {connect: 10s}"))
	c := dial(t, addr)
	// Wait (bounded) until the proxy's connect is in SYN_SENT: its SYN
	// was dropped, so the dial is waiting.
	for end := time.Now().Add(5 * time.Second); !synSentTo(t, port); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Skip("the origin's full accept queue did not hold the proxy's SYN back on this kernel")
		}
	}
	if proxy.Tracked(s) != 1 {
		t.Fatalf("%d connections handled, want 1", proxy.Tracked(s))
	}
	// The listener still accepts while that dial waits.
	c2 := dial(t, addr)
	for end := time.Now().Add(5 * time.Second); proxy.Tracked(s) < 2; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("a second client was not taken while the first one's dial waited")
		}
	}
	// Make room: take the filler off the queue; the retransmitted SYNs get
	// through, and the origin echoes what arrives.
	go func() {
		for range 3 {
			nfd, _, err := syscall.Accept(fd)
			if err != nil {
				return
			}
			f := os.NewFile(uintptr(nfd), "origin")
			oc, _ := net.FileConn(f)
			f.Close()
			if oc != nil {
				go func() { io.Copy(oc, oc); oc.Close() }()
			}
		}
	}()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "slow" {
		t.Fatalf("echo through a slow origin: %q %v", buf, err)
	}
	e := rec.Expect(t, event.Connect, 0)
	if d := e.ConnectTime.Sub(e.StartTime); d < 200*time.Millisecond {
		t.Errorf("connected %v after accept: the dial did not wait for the retransmitted SYN", d)
	}
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Write([]byte("two!")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "two!" {
		t.Fatalf("second client: %q %v", buf, err)
	}
	rec.Expect(t, event.Connect, 0)
	c.Close()
	c2.Close()
	rec.Expect(t, event.Disconnect, event.StatusOK)
	rec.Expect(t, event.Disconnect, event.StatusOK)
}

// synSentTo reports whether a socket of this host is in SYN_SENT towards
// 127.0.0.1:port (/proc/net/tcp: state 02).
func synSentTo(t *testing.T, port int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Skip("no /proc/net/tcp")
	}
	want := fmt.Sprintf("0100007F:%04X 02", port)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.Contains(f[2]+" "+f[3], want) {
			return true
		}
	}
	return false
}
