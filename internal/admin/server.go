// Package admin is prism's admin listener: Prometheus metrics over the
// counters the proxy already keeps, health and readiness for load
// balancers, a JSON API (apps, live sessions, closing one, log jobs), an
// embedded live dashboard and, when enabled, pprof. It also holds the
// client side of `prism status`.
//
// The admin side reads what the daemon hands it (Parts): counters, the
// session registry and a few functions. It never waits on the data path,
// and it shows nothing that the records do not already contain.
package admin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed dashboard
var dashboardFS embed.FS

// Server is the admin listener.
type Server struct {
	cfg   Config
	p     *Parts
	log   *slog.Logger
	token []byte
	tls   *tls.Config // nil: plain HTTP
	mtls  bool        // client certificates authorise requests
	start time.Time

	unauthorized atomic.Uint64
	live         liveCache
	sessionSlots chan struct{} // bounds concurrent session-list walks

	ln  net.Listener
	raw net.Listener // ln without TLS
	srv *http.Server
}

// File duplicates the listening socket for a new process (binary
// upgrade); nil before Start.
func (s *Server) File() (*os.File, error) {
	if s.raw == nil {
		return nil, nil
	}
	fl, ok := s.raw.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("admin: listener %T has no file", s.raw)
	}
	return fl.File()
}

// New builds the admin server of cfg over p. Nothing listens until Start.
func New(cfg Config, p *Parts, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tok, err := cfg.token()
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	s := &Server{cfg: cfg, p: p, log: logger, start: time.Now(), sessionSlots: make(chan struct{}, 2)}
	if tok != "" {
		s.token = []byte(tok)
	}
	if cfg.TLS.On() {
		if s.tls, err = serverTLS(cfg.TLS); err != nil {
			return nil, err
		}
		s.mtls = cfg.TLS.ClientCA != ""
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{p: p, live: &s.live, unauth: s.unauthorized.Load})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.auth(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)})))
	mux.Handle("GET /api/v1/apps", s.auth(http.HandlerFunc(s.apps)))
	mux.Handle("GET /api/v1/sessions", s.auth(http.HandlerFunc(s.sessions)))
	mux.Handle("DELETE /api/v1/sessions/{id}", s.auth(http.HandlerFunc(s.closeSession)))
	mux.Handle("GET /api/v1/jobs", s.auth(http.HandlerFunc(s.jobs)))
	mux.Handle("GET /api/v1/summary", s.auth(http.HandlerFunc(s.summary)))
	mux.Handle("POST /api/v1/reload", s.auth(http.HandlerFunc(s.reload)))
	if cfg.Pprof {
		mux.Handle("GET /debug/pprof/", s.auth(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", s.auth(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", s.auth(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", s.auth(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", s.auth(http.HandlerFunc(pprof.Trace)))
	}
	// The dashboard page and its assets carry no data: the page asks for a
	// token itself when the API answers 401.
	sub, _ := fs.Sub(dashboardFS, "dashboard")
	mux.Handle("GET /", http.FileServerFS(sub))
	s.srv = &http.Server{
		Handler:           s.securityHeaders(mux),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start binds the listener and serves in the background.
func (s *Server) Start() error { return s.StartOn(nil) }

// StartOn is Start on ln, a listening socket bound for admin.listen that
// this process inherited (binary upgrade); nil binds one.
func (s *Server) StartOn(ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("admin: listen %s: %w", s.cfg.Listen, err)
		}
	}
	s.raw = ln
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
}

// Listen is the admin.listen the server was built for (as configured).
func (s *Server) Listen() string { return s.cfg.Listen }

// Addr is the bound address (after Start).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the listener; open requests get until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = s.srv.Close()
	}
	return err
}

// Unauthorized is the number of requests refused with 401.
func (s *Server) Unauthorized() uint64 { return s.unauthorized.Load() }

// auth lets a request through when neither a token nor client
// certificates are configured (a loopback listener), when it carries the
// token, or when it came with a client certificate that chains to
// tls.client_ca; otherwise it answers 401.
func (s *Server) auth(h http.Handler) http.Handler {
	if s.token == nil && !s.mtls {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		tokenOK := ok && s.token != nil && subtle.ConstantTimeCompare([]byte(got), s.token) == 1
		certOK := s.mtls && r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		if !tokenOK && !certOK {
			s.unauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="prism admin"`)
			http.Error(w, "unauthorized: send Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// securityHeaders sets headers that keep the dashboard from being framed or
// fed foreign scripts. Without a token it also refuses requests whose Host
// is not a loopback name: a web page the operator visits cannot reach the
// loopback API through a DNS name rebound to 127.0.0.1.
//
// It also refuses cross-origin state-changing requests (POST, DELETE):
// the Host check does not stop them, as a page elsewhere may name
// 127.0.0.1 itself, and a bodiless POST is a "simple" request that a
// browser sends without a preflight, so without a token (or with
// tls.client_ca, whose certificate the browser presents by itself) any
// page the operator visits could reload the config. Browsers say where a
// request comes from (Sec-Fetch-Site, else Origin); net/http's
// CrossOriginProtection refuses one from another origin and lets through
// the dashboard's own requests and those of clients that send neither
// header (prism status, curl, scripts).
func (s *Server) securityHeaders(h http.Handler) http.Handler {
	csrf := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := csrf.Check(r); err != nil {
			http.Error(w, "forbidden: a state-changing request from another origin (a web page elsewhere) is refused", http.StatusForbidden)
			return
		}
		if s.token == nil && !s.mtls {
			host := r.Host
			if hst, _, err := net.SplitHostPort(host); err == nil {
				host = hst
			}
			if !IsLoopback(strings.Trim(host, "[]")) {
				http.Error(w, "forbidden: without a token the admin listener answers only loopback Host names", http.StatusForbidden)
				return
			}
		}
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// serverTLS loads the admin listener's certificate and, with client_ca,
// asks clients for a certificate (verified when given; auth decides).
func serverTLS(c TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("admin tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("admin tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin tls.client_ca: no PEM certificate in %s", c.ClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.p.Ready != nil {
		if err := s.p.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}
