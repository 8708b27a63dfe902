package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/daemon"
	"github.com/prismproxy/prism/internal/upgrade"
)

// exePath is this executable's path as it was at start: an upgrade starts
// whatever file is at that path now (the new binary installed over it).
var exePath = func() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return os.Args[0]
}()

// upgradeReadyTimeout bounds how long the old process waits for the new
// one to listen and report ready.
const upgradeReadyTimeout = 60 * time.Second

// upgradeBinary is SIGUSR2: start the executable anew with every listening
// socket, wait until it serves, then stop accepting here (the caller then
// drains and exits). It reports whether the new process took over; if not,
// this one goes on serving as before. Closing cancel (SIGTERM during the
// upgrade) kills the new process if it is not ready yet and waits for it
// to exit.
func upgradeBinary(d *daemon.Daemon, logger *slog.Logger, pidfile string, cancel <-chan struct{}) bool {
	files, err := d.ListenFiles()
	if err != nil {
		logger.Error("upgrade: cannot hand over the sockets; still serving", "err", err)
		return false
	}
	defer func() {
		for _, f := range files {
			f.File.Close()
		}
	}()
	logger.Info("upgrade: starting the new executable", "path", exePath, "sockets", len(files))
	child, err := upgrade.Spawn(exePath, os.Args[1:], os.Environ(), files, os.Stdout, os.Stderr, upgradeReadyTimeout, cancel)
	if err != nil {
		if pidfile != "" {
			// The new process wrote its pid there when it started, and
			// removed the file when it failed (or was killed with its pid
			// in it): this process is the one to signal again. Spawn
			// returns only once the new process is gone.
			if err := writePidfileFor(pidfile, os.Getpid()); err != nil {
				logger.Error("upgrade: pid file", "err", err)
			}
		}
		if errors.Is(err, upgrade.ErrCanceled) {
			logger.Warn("upgrade cancelled: the new process was killed before it was ready")
			return false
		}
		logger.Error("upgrade failed; still serving", "err", err)
		return false
	}
	pid := child.Cmd.Process.Pid
	// systemd follows the new process (NotifyAccess=main lets the current
	// main process name its successor).
	notify(logger, fmt.Sprintf("MAINPID=%d", pid), "STATUS=upgraded: old process draining")
	if pidfile != "" {
		if err := writePidfileFor(pidfile, pid); err != nil {
			logger.Error("upgrade: pid file", "err", err)
		}
	}
	d.HandedOver()
	logger.Info("upgrade: new process ready; no longer accepting here, draining", "new_pid", pid)
	return true
}

func writePidfileFor(path string, pid int) error {
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// removePidfile removes path if it still names this process (after an
// upgrade it names the new one).
func removePidfile(path string) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
