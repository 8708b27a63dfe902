// Package proc starts, pins, watches and stops the processes the benchmark
// harnesses compare (proxies and origins), and reads their CPU time,
// memory and descriptors from /proc. It is shared by bench, bench/tlsbench
// and bench/udpbench so that every harness measures a process the same
// way. Linux only.
package proc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Launcher starts processes pinned to a CPU with taskset.
type Launcher struct {
	// Taskset is the path of taskset(1); empty runs processes unpinned.
	Taskset string
	// Log receives the stdout (unless the process reports its address
	// there) and stderr of every process.
	Log io.Writer
	// Tail, if set, returns the end of Log for start-failure messages.
	Tail func() string
}

// Process is a started process and the address it listens on.
type Process struct {
	Addr string
	PID  int
	// Stop asks the process to stop (SIGTERM) and kills it after 5 s.
	Stop func()
}

// Command returns the command that runs argv pinned to cpu.
func (l *Launcher) Command(cpu string, argv ...string) *exec.Cmd {
	if l.Taskset != "" && cpu != "" {
		argv = append([]string{l.Taskset, "-c", cpu}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = l.Log
	return cmd
}

// Start starts a process pinned to cpu with its stdout and stderr going
// to Log, without waiting for it to be ready (the caller knows how to
// tell: a UDP listener, say, gives no sign a TCP dial could see). Addr is
// left empty.
func (l *Launcher) Start(cpu, name string, argv ...string) (*Process, error) {
	p, _, err := l.start(cpu, name, argv...)
	return p, err
}

func (l *Launcher) start(cpu, name string, argv ...string) (*Process, chan error, error) {
	cmd := l.Command(cpu, argv...)
	cmd.Stdout = l.Log
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return &Process{PID: cmd.Process.Pid, Stop: func() { stop(cmd, exited) }}, exited, nil
}

// SpawnPort starts a process that listens on 127.0.0.1:port (chosen by the
// caller, see FreePort) and returns once it accepts connections.
func (l *Launcher) SpawnPort(cpu, name string, port int, argv ...string) (*Process, error) {
	p, exited, err := l.start(cpu, name, argv...)
	if err != nil {
		return nil, err
	}
	p.Addr = "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited at start: %v%s", name, err, l.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
			c.Close()
			return p, nil
		}
	}
	p.Stop()
	return nil, fmt.Errorf("%s did not listen on %s within 10s%s", name, p.Addr, l.tail())
}

// SpawnAddr starts a process that prints the address it listens on as the
// first line of its stdout, and returns once it has.
func (l *Launcher) SpawnAddr(cpu, name string, argv ...string) (*Process, error) {
	cmd := l.Command(cpu, argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() { // drain, so the process never blocks on stdout
		}
	}()
	go func() { exited <- cmd.Wait() }()
	p := &Process{PID: cmd.Process.Pid, Stop: func() { stop(cmd, exited) }}
	select {
	case addr, ok := <-lines:
		if ok {
			p.Addr = addr
			return p, nil
		}
		p.Stop()
		return nil, fmt.Errorf("%s printed no address%s", name, l.tail())
	case <-time.After(10 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("%s printed no address within 10s%s", name, l.tail())
	}
}

func (l *Launcher) tail() string {
	if l.Tail == nil {
		return ""
	}
	if t := l.Tail(); t != "" {
		return ": " + t
	}
	return ""
}

// stop asks the process to stop (SIGTERM), then kills it after 5 s.
func stop(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LookPath finds a program in PATH or in the sbin directories Debian
// installs servers into (not in a normal user's PATH).
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(d, name); IsFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// IsFile reports whether p exists and is not a directory.
func IsFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// BuildPrism builds root's ./cmd/prism into dir and returns the binary's
// path; the error is one line, fit for a "skipped" message.
func BuildPrism(root, dir string) (string, error) {
	if !IsFile(filepath.Join(root, "cmd", "prism", "main.go")) {
		return "", fmt.Errorf("cmd/prism does not exist in %s", root)
	}
	bin := filepath.Join(dir, "prism")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/prism")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return "", fmt.Errorf("go build ./cmd/prism failed: %v: %s", err, first)
	}
	return bin, nil
}

// RepoRoot returns the directory holding go.mod at or above the working
// directory: the harnesses build ./cmd/prism from there.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if IsFile(filepath.Join(d, "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: run from the repository", dir)
		}
	}
}

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100
// on every Linux the benchmarks run on.
const clockTick = 100

// CPUTime returns the user+system CPU time a process has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// Fields after the command name (which may contain spaces) start after ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// PSS returns the proportional set size of a process in bytes.
func PSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Pss:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}

// FDCount returns how many descriptors a process has open, -1 if unknown.
func FDCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
