package upgrade

import (
	"bytes"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	c, err := Spawn("/bin/sh", []string{"-c", script}, os.Environ(), []File{f}, &out, &out, 10*time.Second, nil)
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
	if _, err := Spawn("/bin/sh", []string{"-c", "exit 0"}, nil, []File{f}, nil, nil, 10*time.Second, nil); err == nil || !strings.Contains(err.Error(), "before it was ready") {
		t.Errorf("child exiting at once: %v", err)
	}
	start := time.Now()
	if _, err := Spawn("/bin/sh", []string{"-c", "sleep 30"}, nil, []File{f}, nil, nil, 300*time.Millisecond, nil); err == nil || !strings.Contains(err.Error(), "not ready within") {
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

// nonBlocking reports whether the socket of c has O_NONBLOCK set.
func nonBlocking(t *testing.T, c syscall.Conn) bool {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
	return flags&unix.O_NONBLOCK != 0
}

// TestSpawnKeepsSocketsNonBlocking: the sockets the running process hands
// over are the ones it goes on serving until the new process is ready, and
// O_NONBLOCK belongs to the socket (the open file description every
// duplicate shares), not to one descriptor. Spawn must not clear it: on a
// blocking socket the UDP listener's raw recvmmsg sleeps in the kernel, and
// a signal that interrupts it after some datagrams leaves ERESTARTSYS as the
// socket's pending error, which the next send on the socket (a reply to a
// client) returns instead of sending. net.Conn.File's descriptor is one
// whose Fd (what os/exec calls for ExtraFiles) puts the socket in blocking
// mode.
func TestSpawnKeepsSocketsNonBlocking(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var fs []File
	for _, c := range []interface{ File() (*os.File, error) }{uc, ln} {
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fs = append(fs, File{Key: "k", File: f})
	}
	c, err := Spawn("/bin/sh", []string{"-c", `eval "echo READY >&$PRISM_READY_FD"; exec sleep 30`}, nil, fs, nil, nil, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	_ = c.Cmd.Process.Kill()
	_ = c.Wait()
	if !nonBlocking(t, uc) {
		t.Error("the UDP socket handed to the new process is in blocking mode in this one")
	}
	if !nonBlocking(t, ln) {
		t.Error("the TCP listener handed to the new process is in blocking mode in this one")
	}
}
