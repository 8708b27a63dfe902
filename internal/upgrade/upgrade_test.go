package upgrade

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func listenerFile(t *testing.T) File {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return File{Key: "tcp " + ln.Addr().String(), File: f}
}

// TestSpawnReady: the child sees the socket at fd 3, its key in the
// environment, and reports ready on the fd named by PRISM_READY_FD.
func TestSpawnReady(t *testing.T) {
	f := listenerFile(t)
	var out bytes.Buffer
	script := `test -e /proc/self/fd/3 || exit 3
echo "fds=$PRISM_LISTEN_FDS names=$PRISM_LISTEN_FDNAMES"
eval "echo READY >&$PRISM_READY_FD"
exec sleep 30`
	c, err := Spawn("/bin/sh", []string{"-c", script}, os.Environ(), []File{f}, &out, &out, 10*time.Second)
	if err != nil {
		t.Fatalf("Spawn: %v (output %q)", err, out.String())
	}
	// Ready and still running (a child that exits at once is a failed
	// upgrade): stop it.
	_ = c.Cmd.Process.Kill()
	_ = c.Wait()
	if got := out.String(); !strings.Contains(got, "fds=1 names="+f.Key) {
		t.Errorf("child environment: %q", got)
	}
}

// TestSpawnNotReady: a child that exits without saying ready, or says
// nothing in time, is an error (and the old process keeps serving).
func TestSpawnNotReady(t *testing.T) {
	f := listenerFile(t)
	if _, err := Spawn("/bin/sh", []string{"-c", "exit 0"}, nil, []File{f}, nil, nil, 10*time.Second); err == nil || !strings.Contains(err.Error(), "before it was ready") {
		t.Errorf("child exiting at once: %v", err)
	}
	start := time.Now()
	if _, err := Spawn("/bin/sh", []string{"-c", "sleep 30"}, nil, []File{f}, nil, nil, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "not ready within") {
		t.Errorf("silent child: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the silent child was not killed at the timeout")
	}
}

func TestInheritedNone(t *testing.T) {
	t.Setenv(EnvFDs, "")
	t.Setenv("LISTEN_PID", "")
	fs, err := Inherited()
	if err != nil || fs != nil {
		t.Fatalf("Inherited without variables: %v %v", fs, err)
	}
	t.Setenv("LISTEN_PID", "1") // another process's sockets: not ours
	t.Setenv("LISTEN_FDS", "2")
	if fs, err := Inherited(); err != nil || fs != nil {
		t.Fatalf("LISTEN_PID of another process: %v %v", fs, err)
	}
}
