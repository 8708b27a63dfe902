package proxy_test

// End to end for UDP apps: the whole daemon from one YAML file, a real DNS
// client (dig) through prism to a real DNS server (dnsmasq), and a Simple
// Proxy Protocol app in front of the Go SPP origin, with the records a real
// spectrum_events log job writes to a file.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/event/eventtest"
	"github.com/prismproxy/prism/internal/spp/spptest"
	"github.com/prismproxy/prism/internal/testpeer"
)

func TestUDPAppsFromConfigFile(t *testing.T) {
	testpeer.Need(t, "dnsmasq")
	dig := testpeer.Need(t, "dig")
	dir := t.TempDir()
	dnsPort := testpeer.FreePort(t)
	testpeer.Dnsmasq(t, dnsPort, "/test.example/192.0.2.1")
	sppOrigin := spptest.Start(t)

	logPath := filepath.Join(dir, "spectrum.log")
	yml := fmt.Sprintf(`node: {colo: TST, id: t1}
apps:
  - id: dns
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["127.0.0.1:%d"]}
  - id: game
    protocol: udp
    listen: ["127.0.0.1:0"]
    origins: {addresses: ["%s"]}
    proxy_protocol: simple
    udp: {idle_timeout: 300ms, max_sessions_per_client: 8}
log_jobs:
  - name: spectrum
    dataset: spectrum_events
    destination: {type: file, path: %s}
`, dnsPort, sppOrigin.Addr(), logPath)
	rec := eventtest.New()
	d, stop := runDaemon(t, yml, rec)

	// dig → prism → dnsmasq.
	dnsAddr := d.Addrs("dns")[0].(*net.UDPAddr)
	out, err := testpeer.Run(t, 10*time.Second, dig, "@127.0.0.1", "-p", fmt.Sprint(dnsAddr.Port), "+tries=1", "+time=3", "+short", "test.example", "A")
	if err != nil || strings.TrimSpace(out) != "192.0.2.1" {
		t.Fatalf("dig through prism: %v\n%s", err, out)
	}
	dnsConnect := nextOfApp(t, rec, "dns", event.Connect)

	// A Go client → prism (SPP) → the SPP origin; the session ends idle.
	c, err := net.DialUDP("udp", nil, d.Addrs("game")[0].(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("move north")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "move north" {
		t.Fatalf("reply %q %v", buf[:n], err)
	}
	if seen := <-sppOrigin.C(); seen.Client != c.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("the SPP origin saw client %v", seen.Client)
	}
	idle := nextOfApp(t, rec, "game", event.Disconnect)
	if idle.Status != 200 || idle.CloseReason != event.ReasonTimeout || idle.ClientBytes != 10 || idle.OriginBytes != 10 {
		t.Fatalf("idle disconnect %+v", idle)
	}

	// Stopping ends the dns session (closed) and flushes the log job.
	if err := stop(10 * time.Second); err != nil {
		t.Error(err)
	}
	closed := nextOfApp(t, rec, "dns", event.Disconnect)
	if closed.SessionID != dnsConnect.SessionID || closed.CloseReason != event.ReasonClosed {
		t.Fatalf("dns disconnect %+v", closed)
	}

	// The log job's file: Spectrum records with UDP on both legs.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type rec4 struct {
		Application, Event, ClientProto, OriginProto string
		Status                                       int
		ClientBytes, OriginBytes                     int64
	}
	seen := map[string]rec4{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r rec4
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad record %q: %v", sc.Text(), err)
		}
		seen[r.Application+"/"+r.Event] = r
	}
	for _, k := range []string{"dns/connect", "dns/disconnect", "game/connect", "game/disconnect"} {
		r, ok := seen[k]
		if !ok {
			t.Fatalf("no %s record in %s (have %v)", k, logPath, seen)
		}
		if r.ClientProto != "udp" || r.OriginProto != "udp" {
			t.Fatalf("%s: protos %q/%q", k, r.ClientProto, r.OriginProto)
		}
	}
	if r := seen["game/disconnect"]; r.Status != 200 || r.ClientBytes != 10 || r.OriginBytes != 10 {
		t.Fatalf("game disconnect record %+v", r)
	}
	if r := seen["dns/disconnect"]; r.ClientBytes < 12 || r.OriginBytes <= r.ClientBytes {
		t.Fatalf("dns disconnect record %+v", r)
	}
}
