package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/upgrade"
)

// TestFailedStartTakesNothing: the new process of a binary upgrade shares
// its listening sockets with the old one. When one of its apps cannot bind
// (a port another process holds), it gives up — and it must not have taken
// anything from the shared sockets first. It started its apps one by one,
// so the apps before the failing one accepted connections from the shared
// backlog and read datagrams from the shared queue, then cut them when it
// shut them down again: traffic the old process, which goes on serving,
// never saw. Now every app binds before any serves.
//
// Connections wait in the backlog of the "old process's" listener and
// datagrams in its UDP socket; the new daemon inherits both, then fails on
// an app whose port range ends at a held port (binding the range first
// gives the apps before it time to take what is waiting, as the old code
// did). The old sockets must still hold every connection and datagram, and
// the new daemon must have emitted no record.
func TestFailedStartTakesNothing(t *testing.T) {
	oldTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer oldTCP.Close()
	oldUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer oldUDP.Close()
	// The range of app "late", on an address of its own so that nothing
	// else on the machine binds its ports; its last port is held.
	const host, lo, hi = "127.0.0.77", 20000, 20511
	held, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, hi))
	if err != nil {
		t.Skipf("cannot hold %s:%d: %v", host, hi, err)
	}
	defer held.Close()

	const conns, dgrams = 8, 8
	var clients []net.Conn
	for range conns {
		c, err := net.Dial("tcp", oldTCP.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	client, err := net.Dial("udp", oldUDP.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range dgrams {
		if _, err := fmt.Fprintf(client, "datagram %d", i); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`node: {colo: TST}
apps:
  - id: tcp
    listen: [%q]
    origins: {addresses: ["127.0.0.1:9"]}
  - id: udp
    protocol: udp
    listen: [%q]
    udp: {sockets: 1}
    origins: {addresses: ["127.0.0.1:9"]}
  - id: late
    listen: ["%s:%d-%d"]
    origins: {addresses: ["127.0.0.1:9"]}
`, oldTCP.Addr(), oldUDP.LocalAddr(), host, lo, hi)))
	if err != nil {
		t.Fatal(err)
	}
	tf, err := oldTCP.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	uf, err := oldUDP.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecords()
	d, err := New(cfg, slog.New(slog.DiscardHandler), WithEmitter(rec), WithInherited([]upgrade.File{
		{Key: netspec.ListenKey("tcp", oldTCP.Addr().String()), File: tf},
		{Key: netspec.ListenKey("udp", oldUDP.LocalAddr().String()), File: uf},
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Start()
	if err == nil || !strings.Contains(err.Error(), "app late") {
		t.Fatalf("Start: %v; want app late's bind error", err)
	}
	if err := d.Shutdown(context.Background()); err != nil { // as cmd/prism does then
		t.Errorf("Shutdown after the failed Start: %v", err)
	}

	// The old process still has everything.
	_ = oldTCP.(*net.TCPListener).SetDeadline(time.Now().Add(2 * time.Second))
	for i := range conns {
		c, err := oldTCP.Accept()
		if err != nil {
			t.Fatalf("old listener: connection %d of %d: %v", i+1, conns, err)
		}
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil || b[0] != 'x' {
			t.Errorf("client %d: %q, %v; want the old process's byte", i, b, err)
		}
	}
	_ = oldUDP.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	for i := range dgrams {
		n, _, err := oldUDP.ReadFrom(buf)
		if err != nil {
			t.Fatalf("old udp socket: datagram %d of %d: %v", i+1, dgrams, err)
		}
		if want := fmt.Sprintf("datagram %d", i); string(buf[:n]) != want {
			t.Errorf("old udp socket: %q, want %q", buf[:n], want)
		}
	}
	if e, ok := rec.NextWithin(100 * time.Millisecond); ok {
		t.Errorf("the daemon that failed to start emitted a record (%s %d, client %s): it took a connection or a datagram", e.Type, e.Status, e.ClientAddr)
	}
}

// TestReloadAfterHandedOverIsRefused: once a binary upgrade handed the
// sockets over, the old process only drains. A reload reaching it then (a
// POST /api/v1/reload in flight when HandedOver shut its admin listener
// down, which gives such requests a second) was applied: an app the file
// added was bound and served by the old process, beside the new one that
// serves it too (SO_REUSEPORT shares the port between them) and after the
// old one had given its sockets up. It is refused as during a Shutdown.
func TestReloadAfterHandedOverIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	origin, added := testpeer.Echo(t), testpeer.ClosedPort(t)
	base := fmt.Sprintf(`node: {colo: TST}
shutdown: {drain_timeout: 300ms}
apps:
  - id: web
    listen: ["127.0.0.1:0"]
    origins: {addresses: [%q]}
`, origin)
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d := start(t, cfg, eventtest.New())
	d.HandedOver()
	late := base + fmt.Sprintf("  - id: late\n    listen: [%q]\n    origins: {addresses: [%q]}\n", added, origin)
	if err := os.WriteFile(path, []byte(late), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReloadConfig(); !errors.Is(err, errStopping) {
		t.Errorf("ReloadConfig after HandedOver: %v, want %v", err, errStopping)
	}
	lcfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.swap(lcfg); !errors.Is(err, errStopping) { // one that passed lockReload before HandedOver
		t.Errorf("a swap after HandedOver: %v, want %v", err, errStopping)
	}
	if c, err := net.Dial("tcp", added); err == nil {
		c.Close()
		t.Error("the handed-over process listens for an app a reload added")
	}
	if got := d.Config(); len(got.Apps) != 1 {
		t.Errorf("running config has %d apps, want its 1", len(got.Apps))
	}
}
