// Package upgrade hands prism's listening sockets to a new process without
// an accept gap: the running process starts the new executable with every
// listening TCP and UDP socket as an inherited file descriptor (named in
// the environment, the way systemd's LISTEN_FDS/LISTEN_FDNAMES name
// socket-activated ones), waits until the new process says it is serving,
// and only then stops accepting. The kernel keeps one socket throughout, so
// no SYN meets a closed port and no datagram is lost. Sockets passed by
// systemd socket activation (LISTEN_PID/LISTEN_FDS) are read the same way.
package upgrade

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of a process started by Spawn.
const (
	EnvFDs   = "PRISM_LISTEN_FDS"     // how many sockets, from fd 3 on
	EnvNames = "PRISM_LISTEN_FDNAMES" // their listen keys, separated by "|"
	EnvReady = "PRISM_READY_FD"       // fd to write "READY\n" to once serving
)

// File is one inherited socket and the listen key it serves ("tcp
// 127.0.0.1:443", "udp [::]:53", "unix /run/prism/a.sock"). Key is empty
// for a socket-activated descriptor systemd gave no usable name: the
// daemon then matches it by its address.
type File struct {
	Key  string
	File *os.File
}

// Inherited returns the sockets this process was started with, from Spawn
// or from systemd socket activation, and removes the variables from the
// environment so that a later Spawn starts clean. None is not an error.
func Inherited() ([]File, error) {
	if n := os.Getenv(EnvFDs); n != "" {
		names := strings.Split(os.Getenv(EnvNames), "|")
		os.Unsetenv(EnvFDs)
		os.Unsetenv(EnvNames)
		return files(n, names)
	}
	if pid := os.Getenv("LISTEN_PID"); pid != "" && pid == strconv.Itoa(os.Getpid()) {
		n := os.Getenv("LISTEN_FDS")
		// FileDescriptorName= cannot hold a listen key (no ':' allowed):
		// socket-activated descriptors are matched by address.
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		return files(n, nil)
	}
	return nil, nil
}

func files(count string, names []string) ([]File, error) {
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || n > 1<<16 {
		return nil, fmt.Errorf("inherited sockets: bad count %q", count)
	}
	out := make([]File, 0, n)
	for i := range n {
		fd := 3 + i
		syscall.CloseOnExec(fd)
		f := File{File: os.NewFile(uintptr(fd), fmt.Sprintf("inherited-%d", fd))}
		if i < len(names) {
			f.Key = names[i]
		}
		out = append(out, f)
	}
	return out, nil
}

// Ready tells the process that started this one (Spawn) that it serves;
// it does nothing when this process was not started by Spawn.
func Ready() error {
	v := os.Getenv(EnvReady)
	if v == "" {
		return nil
	}
	os.Unsetenv(EnvReady)
	fd, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", EnvReady, v, err)
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	if _, err := io.WriteString(f, "READY\n"); err != nil {
		return fmt.Errorf("tell the old process we are ready: %w", err)
	}
	return nil
}

// inheritable duplicates f, a socket this process goes on serving, for a
// child's ExtraFiles. os/exec takes each file's Fd, and the Fd of a
// net.Conn's File (what the servers hand over) puts the socket in blocking
// mode: O_NONBLOCK belongs to the socket (the open file description every
// duplicate, in either process, shares), not to one descriptor, so this
// process's own listeners would turn blocking until the new process's
// net.FilePacketConn or FileListener cleared it again. A UDP listener's
// raw recvmmsg then sleeps in the kernel, and a signal that interrupts it
// after a datagram leaves ERESTARTSYS as the socket's pending error, which
// the next send on the socket returns instead of sending: a reply lost. A
// duplicate made here (os.NewFile of a plain dup) has an Fd that leaves
// the mode alone.
func inheritable(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// Child is a process started by Spawn.
type Child struct {
	Cmd    *exec.Cmd
	exited chan error
}

// Wait waits for the child to exit (Spawn already reaps it: do not call
// Cmd.Wait).
func (c *Child) Wait() error { return <-c.exited }

// ErrCanceled is Spawn's error when cancel closed before the child was ready.
var ErrCanceled = errors.New("upgrade: cancelled before the new process was ready")

// Spawn starts exe with args and the sockets of fs, and waits until it
// calls Ready (then it returns the child) or exits or timeout passes or
// cancel is closed (then it returns an error, having killed the child and
// waited for it to exit; ErrCanceled for cancel). stdout and stderr are
// the child's; env is the environment besides the hand-over variables. A
// nil cancel never fires.
func Spawn(exe string, args []string, env []string, fs []File, stdout, stderr io.Writer, timeout time.Duration, cancel <-chan struct{}) (*Child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	names := make([]string, len(fs))
	for i, f := range fs {
		d, err := inheritable(f.File)
		if err != nil {
			w.Close()
			closeFiles(cmd.ExtraFiles)
			return nil, fmt.Errorf("upgrade: socket %s: %w", f.Key, err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, d)
		names[i] = f.Key
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, w)
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case EnvFDs, EnvNames, EnvReady, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES":
			continue
		}
		cmd.Env = append(cmd.Env, e)
	}
	cmd.Env = append(cmd.Env,
		EnvFDs+"="+strconv.Itoa(len(fs)),
		EnvNames+"="+strings.Join(names, "|"),
		EnvReady+"="+strconv.Itoa(3+len(fs)))
	err = cmd.Start()
	closeFiles(cmd.ExtraFiles) // the child holds its copies
	if err != nil {
		return nil, fmt.Errorf("upgrade: start %s: %w", exe, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && line != "READY\n" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err == nil {
			// Reaped when it ends, long after this process may be gone.
			return &Child{Cmd: cmd, exited: exited}, nil
		}
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("upgrade: %s exited before it was ready: %w", exe, err)
	case err := <-exited:
		return nil, fmt.Errorf("upgrade: %s exited before it was ready: %v", exe, err)
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return nil, errors.New("upgrade: the new process was not ready within " + timeout.String())
	case <-cancel:
		_ = cmd.Process.Kill()
		<-exited
		return nil, ErrCanceled
	}
}
