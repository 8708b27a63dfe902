package main

import (
	"flag"
	"fmt"
	"io"
	"os"
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
// has already checked the config, so a reload of a bad file is refused here
// with its problems printed, before the running prism is bothered.
func signalRunning(pidfile string, sig syscall.Signal, stdout, stderr io.Writer) int {
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
	if err := syscall.Kill(pid, sig); err != nil {
		fmt.Fprintf(stderr, "prism reload: signal process %d: %v\n", pid, err)
		return 1
	}
	fmt.Fprintf(stdout, "config ok; sent %v to prism (pid %d); its log says what changed\n", sig, pid)
	return 0
}
