package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// pidfileEnv names the pid file when -pidfile does not.
const pidfileEnv = "PRISM_PIDFILE"

func pidfileFlag(fs *flag.FlagSet) *string {
	return fs.String("pidfile", os.Getenv(pidfileEnv), "file holding the running prism's process id (run writes it; default $"+pidfileEnv+")")
}

func writePidfile(path string) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// signalRunning sends sig to the prism whose pid is in pidfile. The caller
// has already checked the config at path, so a reload of a bad file is
// refused here with its problems printed, before the running prism is
// bothered. The running prism re-reads the file it was started with, not
// path: a path that is another file is refused (the check would have
// been of the wrong file, and its changes would not apply).
func signalRunning(pidfile, path string, sig syscall.Signal, stdout, stderr io.Writer) int {
	if pidfile == "" {
		fmt.Fprintf(stderr, "prism reload: give -pidfile FILE (or set %s): the file `prism run -pidfile` wrote\n", pidfileEnv)
		return 2
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		fmt.Fprintf(stderr, "prism reload: %v\n", err)
		return 1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		fmt.Fprintf(stderr, "prism reload: %s does not hold a process id\n", pidfile)
		return 1
	}
	if running, ok := runningConfig(pid); ok && !sameFile(running, path) {
		fmt.Fprintf(stderr, "prism %s: the running prism (pid %d) was started with %s and re-reads that file, not %s: check and edit that one (prism %s -c %s)\n",
			command(sig), pid, running, path, command(sig), running)
		return 1
	}
	if err := syscall.Kill(pid, sig); err != nil {
		fmt.Fprintf(stderr, "prism reload: signal process %d: %v\n", pid, err)
		return 1
	}
	fmt.Fprintf(stdout, "config ok; sent %v to prism (pid %d); its log says what changed\n", sig, pid)
	return 0
}

func command(sig syscall.Signal) string {
	if sig == syscall.SIGUSR2 {
		return "upgrade"
	}
	return "reload"
}

// runningConfig is the config file the process pid was started with, as
// an absolute path: its -config/-c argument, else its $PRISM_CONFIG,
// relative to its working directory. ok is false when that cannot be
// read (no /proc, another user's process): then nothing is refused.
func runningConfig(pid int) (string, bool) {
	proc := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return "", false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	file := ""
	for i := 1; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || name != "config" && name != "c" {
			continue
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		file = val
	}
	if file == "" {
		env, err := os.ReadFile(proc + "/environ")
		if err != nil {
			return "", false
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, configEnv+"="); ok {
				file = v
			}
		}
	}
	if file == "" {
		return "", false
	}
	if !filepath.IsAbs(file) {
		cwd, err := os.Readlink(proc + "/cwd")
		if err != nil {
			return "", false
		}
		file = filepath.Join(cwd, file)
	}
	return file, true
}

// sameFile reports whether a and b name one file (either missing: they
// are the same only as the same path).
func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		ab, _ := filepath.Abs(b)
		return filepath.Clean(a) == ab
	}
	return os.SameFile(sa, sb)
}
