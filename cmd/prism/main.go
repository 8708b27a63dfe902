// Command prism is a Layer-4 (TCP/UDP) edge proxy that records every
// connection in the Spectrum, EdgeOne and CloudConnexa log schemas.
//
//	prism run -config prism.yaml       run until SIGINT/SIGTERM (SIGHUP reopens log files, re-reads GeoIP and lists)
//	prism validate -config prism.yaml  check the config, print one line per problem
//	prism logs convert|filter|stats|verify ...  work with existing log files (internal/logs)
//	prism version
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon"
	"github.com/prismproxy/prism/internal/logs"
	"github.com/prismproxy/prism/internal/render"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// stdin is what `prism logs` reads for "-"; tests replace it.
var stdin io.Reader = os.Stdin

const usage = `usage:
  prism run -config FILE       run the proxy
  prism validate -config FILE  check a config file
  prism logs SUBCOMMAND ...    convert, filter, summarise or verify log files
                               (prism logs help)
  prism version                print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	render.SetProductVersion(versionString())
	switch args[0] {
	case "logs":
		return logs.Main(args[1:], stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "prism", versionString())
		return 0
	case "run", "validate":
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "prism: unknown command %q\n%s", args[0], usage)
		return 2
	}
	fs := flag.NewFlagSet("prism "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path of the YAML config file")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "prism %s: give exactly -config FILE\n", args[0])
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if args[0] == "validate" {
		fmt.Fprintf(stdout, "%s: ok (%d apps, %d log jobs)\n", *path, len(cfg.Apps), len(cfg.LogJobs))
		return 0
	}
	logger := newLogger(cfg.Log, stderr)
	return serve(cfg, logger)
}

func serve(cfg *config.Config, logger *slog.Logger) int {
	d, err := daemon.New(cfg, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	if err := d.Start(); err != nil {
		logger.Error("cannot listen", "err", err)
		_ = d.Shutdown(context.Background())
		return 1
	}
	for _, a := range cfg.Apps {
		addrs := d.Addrs(a.ID)
		strs := make([]string, len(addrs))
		for i, ad := range addrs {
			strs[i] = ad.Network() + ":" + ad.String()
		}
		logger.Info("app listening", "app", a.ID, "addrs", strs)
	}
	logger.Info("prism started", "version", versionString(), "config", cfg.File, "log_jobs", len(cfg.LogJobs))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			if err := d.Reload(); err != nil {
				logger.Error("SIGHUP reload", "err", err)
			} else {
				logger.Info("SIGHUP: log files reopened, GeoIP and firewall lists re-read")
			}
			continue
		}
		break
	}
	logger.Info("shutting down: no new connections; draining", "drain_timeout", cfg.Shutdown.DrainTimeout.String(), "open", d.Registry().Len())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.DrainTimeout)
	defer cancel()
	start := time.Now()
	err = d.Shutdown(ctx)
	for _, st := range d.Stats() {
		logger.Info("log job totals", "job", st.Job, "emitted", st.Emitted, "written", st.Written, "dropped", st.Dropped, "write_errors", st.WriteErrors)
		if dl := st.Delivery; dl != nil {
			logger.Info("log job delivery totals", "job", st.Job, "accepted", dl.Accepted, "delivered", dl.Delivered,
				"retries", dl.Retries, "rejected", dl.Rejected, "dropped_spool_full", dl.DroppedSpoolFull,
				"dropped_memory_full", dl.DroppedMemoryFull, "dropped_shutdown", dl.DroppedShutdown,
				"dropped_corrupt", dl.DroppedCorrupt, "pending", dl.Pending, "spool_bytes", dl.SpoolBytes, "restored", dl.Restored)
		}
	}
	if err != nil {
		logger.Error("shutdown", "err", err, "took", time.Since(start).String())
		return 1
	}
	logger.Info("stopped", "took", time.Since(start).String())
	return 0
}

func newLogger(c config.Diagnostic, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
