package main

// systemd socket activation, with systemd's own tool: systemd-socket-activate
// binds the listening socket and starts prism when the first client
// connects, passing the socket as LISTEN_FDS. prism serves on it (the
// first client, waiting in the backlog, included) instead of binding its
// own.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

func TestSystemdSocketActivation(t *testing.T) {
	activate := testpeer.Need(t, "systemd-socket-activate")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "spectrum.log")
	cfg, listen := writeRunConfig(t, testpeer.Echo(t), logPath, "1s")
	logs, w := newProcLog(t)
	cmd := exec.Command(activate, "-l", listen, prismBin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	logs.wait(t, "Listening on", 10*time.Second) // the tool's own line: the socket is bound

	// The first client starts prism, which must accept it on the inherited socket.
	c := echoOnce(t, listen, "activated")
	c.Close()
	if l := logs.wait(t, `msg="prism started"`, 20*time.Second); !strings.Contains(l, "inherited_sockets=1") {
		t.Errorf("prism did not use the activated socket: %s", l)
	}
	if strings.Contains(logs.text(), "address already in use") {
		t.Error("prism tried to bind the activated address itself")
	}
	c2 := echoOnce(t, listen, "again")
	c2.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("prism under socket activation: %v", waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("prism did not exit after SIGTERM")
	}
	recs := readRecords(t, logPath)
	checkSession(t, "first (activating) connection", recordsOf(recs, c), len("activated"))
	checkSession(t, "second connection", recordsOf(recs, c2), len("again"))
}

// TestSystemdSocketActivationUDPWildcard: a socket-activated UDP socket on
// the wildcard address ([::]:P, systemd's ListenDatagram=P) was named only
// "udp [::]:P", not also "udp :P" as a TCP one is, so a udp app with listen
// ":P" bound its own socket and failed with "address already in use"
// (docs/reload.md: a wildcard socket matches both). It serves on the
// inherited socket now, the datagram that activated it included; and the
// second name, left in the hand-over, must not get the socket closed.
func TestSystemdSocketActivationUDPWildcard(t *testing.T) {
	activate := testpeer.Need(t, "systemd-socket-activate")
	dir := t.TempDir()
	port := testpeer.FreeUDPPort(t)
	cfg := fmt.Sprintf(`node: {colo: TST, id: test-1}
shutdown: {drain_timeout: 1s}
apps:
  - id: u
    protocol: udp
    listen: [":%d"]
    origins: {addresses: ["%s"]}
`, port, testpeer.QuietUDPEcho(t).String())
	cfgPath := filepath.Join(dir, "prism.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logs, w := newProcLog(t)
	cmd := exec.Command(activate, "-d", "-l", strconv.Itoa(port), prismBin, "run", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	logs.wait(t, "Listening on", 10*time.Second)

	c := dialUDP(t, "127.0.0.1:"+strconv.Itoa(port))
	if _, err := c.Write([]byte("activated")); err != nil { // starts prism
		t.Fatal(err)
	}
	if l := logs.wait(t, `msg="prism started"|cannot start`, 20*time.Second); !strings.Contains(l, "inherited_sockets=1") {
		t.Fatalf("prism did not start on the activated socket: %s", l)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "activated" {
		t.Fatalf("the activating datagram's echo: %q %v", buf[:n], err)
	}
	if err := udpRoundTrip(c, "again"); err != nil {
		t.Fatalf("on the inherited socket after start: %v", err)
	}
	if strings.Contains(logs.text(), "address already in use") {
		t.Error("prism tried to bind the activated address itself")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("prism under socket activation: %v", waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("prism did not exit after SIGTERM")
	}
}
