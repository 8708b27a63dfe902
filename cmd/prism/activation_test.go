package main

// systemd socket activation, with systemd's own tool: systemd-socket-activate
// binds the listening socket and starts prism when the first client
// connects, passing the socket as LISTEN_FDS. prism serves on it (the
// first client, waiting in the backlog, included) instead of binding its
// own.

import (
	"os/exec"
	"path/filepath"
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
