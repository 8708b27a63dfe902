package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/prismproxy/prism/internal/sdnotify"
)

// configEnv names the config file when neither -config nor -c does (a
// container or unit sets it once).
const configEnv = "PRISM_CONFIG"

// configFlag registers -config and its short form -c on fs, both defaulting
// to $PRISM_CONFIG.
func configFlag(fs *flag.FlagSet) *string {
	path := new(string)
	def := os.Getenv(configEnv)
	fs.StringVar(path, "config", def, "path of the YAML config file (default $"+configEnv+")")
	fs.StringVar(path, "c", def, "short for -config")
	return path
}

// notify tells systemd (Type=notify) about a state change; outside systemd
// it does nothing.
func notify(logger *slog.Logger, lines ...string) {
	if _, err := sdnotify.Notify(lines...); err != nil {
		logger.Warn("service manager notification failed", "err", err)
	}
}

func notifyReloading(logger *slog.Logger) {
	if _, err := sdnotify.Reloading(); err != nil {
		logger.Warn("service manager notification failed", "err", err)
	}
}
