// Command prism is a Layer-4 (TCP/UDP) edge proxy that records every
// connection in the Spectrum, EdgeOne and CloudConnexa log schemas.
//
//	prism run -config prism.yaml       run until SIGINT/SIGTERM (SIGHUP reloads the config and reopens log files,
//	                                   SIGUSR1 reopens log files, SIGUSR2 upgrades the binary on the same sockets)
//	prism validate -config prism.yaml  check the config, print one line per problem
//	prism reload|upgrade -config prism.yaml -pidfile FILE
//	                                   check the config, then signal the running prism (SIGHUP|SIGUSR2)
//	prism status [-config prism.yaml | -admin ADDR]  what a running prism is doing (admin API)
//	prism logs convert|filter|stats|verify ...  work with existing log files (internal/logs)
//	prism version                      print the version and the commit it was built from
//
// -c is short for -config; PRISM_CONFIG names the file when neither is given.
// Under systemd (Type=notify) prism reports READY, RELOADING and STOPPING.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/daemon"
	"github.com/prismproxy/prism/internal/logs"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/upgrade"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// stdin is what `prism logs` reads for "-"; tests replace it.
var stdin io.Reader = os.Stdin

const usage = `usage:
  prism run -config FILE [-pidfile FILE]     run the proxy
  prism validate -config FILE                check a config file
  prism reload -config FILE -pidfile FILE    check the config, then have the running prism reload it (SIGHUP)
  prism upgrade -config FILE -pidfile FILE   check the config, then have the running prism start its executable anew (SIGUSR2)
  prism status [-config FILE | -admin HOST:PORT] [-token TOKEN] [-cacert F -cert F -key F]
                                             print apps, sessions and log jobs of a running prism
  prism logs SUBCOMMAND ...                  convert, filter, summarise or verify log files
                                             (prism logs help)
  prism version                              print the version and commit
-c FILE is short for -config FILE; without either, $PRISM_CONFIG names the file.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	render.SetProductVersion(plainVersion())
	switch args[0] {
	case "logs":
		return logs.Main(args[1:], stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "prism", versionString())
		return 0
	case "run", "validate", "reload", "upgrade":
	case "status":
		return status(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "prism: unknown command %q\n%s", args[0], usage)
		return 2
	}
	fs := flag.NewFlagSet("prism "+args[0], flag.ContinueOnError)
	path := configFlag(fs)
	pidfile := pidfileFlag(fs)
	if ok, code := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "prism %s: give exactly -config FILE (or -c FILE, or set %s)\n", args[0], configEnv)
		return 2
	}
	load := config.Load
	if args[0] == "reload" || args[0] == "upgrade" {
		// The running prism reads the token and list files as its own
		// user; the one who signals it may not be allowed to.
		load = config.LoadFileOnly
	}
	cfg, err := load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch args[0] {
	case "validate":
		errs, warns := daemon.Check(cfg)
		if len(warns) > 0 {
			fmt.Fprintln(stderr, cfgerr.Fold(cfg.File, warns))
		}
		if len(errs) > 0 {
			fmt.Fprintln(stderr, cfgerr.Fold(cfg.File, errs))
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (%d apps, %d log jobs)\n", *path, len(cfg.Apps), len(cfg.LogJobs))
		return 0
	case "reload":
		return signalRunning(*pidfile, *path, syscall.SIGHUP, stdout, stderr)
	case "upgrade":
		return signalRunning(*pidfile, *path, syscall.SIGUSR2, stdout, stderr)
	}
	logger := newLogger(cfg.Log, stderr)
	if *pidfile != "" {
		if err := writePidfile(*pidfile); err != nil {
			fmt.Fprintf(stderr, "cannot start: %v\n", err)
			return 1
		}
		defer removePidfile(*pidfile)
	}
	return serve(cfg, logger, stderr, *pidfile)
}

func serve(cfg *config.Config, logger *slog.Logger, stderr io.Writer, pidfile string) int {
	daemon.Version = versionString()
	// Signals are taken before anything starts: a SIGTERM right after
	// "prism started" must drain, not kill the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	inherited, err := upgrade.Inherited()
	if err != nil {
		fmt.Fprintf(stderr, "cannot start: %v\n", err)
		return 1
	}
	d, err := daemon.New(cfg, logger, daemon.WithInherited(inherited))
	if err != nil {
		fmt.Fprintf(stderr, "cannot start: %v\n", err)
		return 1
	}
	if err := d.Start(); err != nil {
		fmt.Fprintf(stderr, "cannot start: %v\n", err)
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
	if a := d.AdminAddr(); a != nil {
		logger.Info("admin listening", "addr", a.String())
	}
	logger.Info("prism started", "version", versionString(), "config", cfg.File, "log_jobs", len(cfg.LogJobs), "inherited_sockets", len(inherited), "pid", os.Getpid())
	if err := upgrade.Ready(); err != nil {
		logger.Error("upgrade", "err", err)
	}
	notify(logger, "READY=1", fmt.Sprintf("STATUS=serving %d apps", len(cfg.Apps)))

	// An upgrade runs beside this loop (the new process may take up to
	// upgradeReadyTimeout to be ready): SIGTERM cancels it at once.
	var upgraded chan bool          // the running upgrade's outcome; nil when none runs
	var cancelUpgrade chan struct{} // closed to kill the new process before it is ready
	handedOver := false             // a new process took the sockets over: this one only drains
loop:
	for {
		var sig os.Signal
		select {
		case sig = <-sigs:
		case ok := <-upgraded:
			upgraded = nil
			if ok {
				handedOver = true
				break loop
			}
			continue // the new process did not start: keep serving
		}
		switch sig {
		case syscall.SIGHUP:
			if upgraded != nil {
				// The new process reads the config when it starts: only reopen here.
				if err := d.Reopen(); err != nil {
					logger.Error("SIGHUP during an upgrade: reopen log files", "err", err)
				} else {
					logger.Info("SIGHUP during an upgrade: log files reopened; the config is not reloaded here (the new process reads it)")
				}
				continue
			}
			notifyReloading(logger)
			_, _, err := d.Hangup() // the config part logs what it did or why not
			// The running config: the new one, also when one of its apps
			// could not start (the others' changes applied), the old one
			// when the file did not load.
			cfg = d.Config()
			notify(logger, "READY=1", fmt.Sprintf("STATUS=serving %d apps", len(cfg.Apps)))
			if err != nil {
				logger.Error("SIGHUP reload", "err", err)
			} else {
				logger.Info("SIGHUP: log files reopened, GeoIP databases, firewall lists and certificates re-read")
			}
		case syscall.SIGUSR2:
			if upgraded != nil {
				logger.Warn("SIGUSR2: an upgrade is already in progress")
				continue
			}
			upgraded, cancelUpgrade = make(chan bool, 1), make(chan struct{})
			go func(res chan<- bool, cancel <-chan struct{}) { res <- upgradeBinary(d, logger, pidfile, cancel) }(upgraded, cancelUpgrade)
		case syscall.SIGUSR1:
			if err := d.Reopen(); err != nil {
				logger.Error("SIGUSR1: reopen log files", "err", err)
			} else {
				logger.Info("SIGUSR1: log files reopened")
			}
		default: // SIGTERM, SIGINT
			if upgraded != nil {
				logger.Info("stop during an upgrade: stopping the new process first", "signal", sig.String())
				close(cancelUpgrade)
				handedOver = <-upgraded // the new process is gone (or took over just before)
				upgraded = nil
			}
			break loop
		}
	}
	if !handedOver {
		// After MAINPID= the service is the new process's: this one's
		// STOPPING=1 would say the service stops.
		notify(logger, "STOPPING=1", "STATUS=draining")
	}
	cfg = d.Config() // a reload through the admin API changes it too
	logger.Info("shutting down: no new connections; draining", "drain_timeout", cfg.Shutdown.DrainTimeout.String(), "open", d.Registry().Len())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.DrainTimeout)
	defer cancel()
	start := time.Now()
	drained, handled := make(chan struct{}), make(chan struct{})
	go func() { defer close(handled); drainSignals(d, logger, sigs, drained) }()
	err = d.Shutdown(ctx)
	close(drained)
	<-handled
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
	logger.Info("stopped", "took", time.Since(start).String(), "pid", os.Getpid())
	return 0
}

// drainSignals handles the signals that arrive while d drains (after
// SIGTERM, or after an upgrade handed the sockets over, which can last
// shutdown.drain_timeout), until drained is closed. The drain still writes
// records, so SIGUSR1 and SIGHUP reopen the log files (logrotate moved
// them); SIGHUP reloads no config (the new process's, or none: stopping).
// SIGTERM, SIGINT and SIGUSR2 change nothing: the drain is already the
// graceful stop, bounded by its deadline.
func drainSignals(d *daemon.Daemon, logger *slog.Logger, sigs <-chan os.Signal, drained <-chan struct{}) {
	for {
		select {
		case <-drained:
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1, syscall.SIGHUP:
				if err := d.Reopen(); err != nil {
					logger.Error("draining: reopen log files", "signal", sig.String(), "err", err)
				} else {
					logger.Info("draining: log files reopened", "signal", sig.String())
				}
			default:
				logger.Info("draining: signal ignored, already stopping", "signal", sig.String())
			}
		}
	}
}

// status prints what a running prism is doing, read from its admin API.
// The address and token come from -admin/-token, else from the admin
// section of the config file (-config, -c or $PRISM_CONFIG, as for the
// other commands), else the default 127.0.0.1:9901; PRISM_ADMIN_TOKEN
// also gives the token (kept out of the process list). A file named only
// by $PRISM_CONFIG is not read when -admin is given.
func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("prism status", flag.ContinueOnError)
	path := configFlag(fs) // the admin address and token are read from its admin section
	addr := fs.String("admin", "", "admin listener host:port or URL (default "+admin.DefaultListen+")")
	// Not the flag's default: the flag package prints a default in the
	// usage (on -h or a mistyped flag), and the variable is there to keep
	// the token out of sight.
	token := fs.String("token", "", "bearer token (default $PRISM_ADMIN_TOKEN)")
	cacert := fs.String("cacert", "", "https: CA bundle the admin certificate chains to")
	cert := fs.String("cert", "", "https: client certificate (admin.tls.client_ca)")
	key := fs.String("key", "", "https: client certificate's key")
	useTLS := false
	if ok, code := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "prism status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *token == "" {
		*token = os.Getenv("PRISM_ADMIN_TOKEN")
	}
	named, addrGiven := false, false
	fs.Visit(func(f *flag.Flag) {
		named = named || f.Name == "config" || f.Name == "c"
		addrGiven = addrGiven || f.Name == "admin"
	})
	if !named && addrGiven {
		*path = "" // $PRISM_CONFIG's file is for when nothing else says where prism is
	}
	if *path != "" {
		// Only the admin section is wanted: no file the config names is
		// read but the token file, and that only when no token is given.
		cfg, err := config.LoadFileOnly(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if !cfg.Admin.Enabled() {
			fmt.Fprintf(stderr, "prism status: %s has no admin listener (admin.listen)\n", *path)
			return 1
		}
		if *addr == "" {
			*addr = cfg.Admin.Listen
		}
		useTLS = cfg.Admin.TLS.On()
		if *token == "" {
			*token = cfg.Admin.Token
			if cfg.Admin.TokenFile != "" {
				if *token, err = admin.ReadTokenFile(cfg.Admin.TokenFile); err != nil {
					fmt.Fprintln(stderr, "prism status:", err)
					return 1
				}
			}
		}
	}
	if *addr == "" {
		*addr = admin.DefaultListen
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := admin.NewClient(*addr, *token)
	if useTLS || *cacert != "" || *cert != "" || strings.HasPrefix(*addr, "https://") {
		if err := c.UseTLS(*cacert, *cert, *key); err != nil {
			fmt.Fprintln(stderr, "prism status:", err)
			return 1
		}
	}
	if err := c.PrintStatus(ctx, stdout); err != nil {
		fmt.Fprintln(stderr, "prism status:", err)
		return 1
	}
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

// parseFlags parses args into fs. What the flag package prints goes to
// stderr, but the usage asked for with -h (-help, --help) goes to stdout
// and the command exits 0. It reports whether the command goes on and,
// if not, its exit status.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (bool, int) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = stdout.Write(out.Bytes())
		return false, 0
	}
	_, _ = stderr.Write(out.Bytes())
	if err != nil {
		return false, 2
	}
	return true, 0
}
