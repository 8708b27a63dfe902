package tlsedge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/filewatch"
)

// TLS alert descriptions the edge sends itself, before crypto/tls is
// involved.
const (
	alertHandshakeFailure = 40
	alertProtocolVersion  = 70
	alertInternalError    = 80
	alertUnrecognizedName = 112
)

// Edge is one app's TLS: its certificates, the server and client
// configurations built from them, and the watcher that reloads them. It is
// safe for concurrent use by every connection of the app.
type Edge struct {
	cfg    Config
	logger *slog.Logger

	minVersion uint16
	sniAllow   []string // normalised patterns
	routes     []string // normalised SNI patterns of PassthroughRoutes

	serverConf *tls.Config // shared by all client handshakes (session tickets work across them)
	originConf *tls.Config // template, cloned per origin handshake

	certs      atomic.Pointer[certSet]
	originCert atomic.Pointer[tls.Certificate]
	roots      atomic.Pointer[x509.CertPool]

	mu       sync.Mutex
	slots    []*tls.Certificate // per configured certificate; nil until it loads
	problems map[string]error   // source name → why its last load failed

	sources []*source
	onLoad  func(src string, err error) // test hook, called after each (re)load
	poll    *filewatch.Poller           // nil when nothing is watched
	reload  sync.Mutex                  // serialises Reload (the watcher's and any other caller's)
	stop    chan struct{}               // closed by Close: handshakes waiting for a slot give up
	closeMu sync.Once

	hs        chan struct{} // handshake slots (cfg.MaxHandshakes); nil: unbounded
	hsRefused atomic.Uint64
}

// NewEdge builds the TLS side of an app from its config, defaulted and
// validated (by package config, or cfgerr.Prepare). It loads every
// certificate and CA file; a file that fails to load is logged and
// reported by Ready, and connections that need it fail (540 when no edge
// certificate at all is usable) until a good file appears. Settings that
// cannot work at all are validation's to refuse, so the error is nil today.
func NewEdge(cfg Config, logger *slog.Logger) (*Edge, error) {
	return newEdge(cfg, logger, nil)
}

func newEdge(cfg Config, logger *slog.Logger, onLoad func(string, error)) (*Edge, error) {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Edge{
		cfg:      cfg,
		logger:   logger,
		problems: map[string]error{},
		onLoad:   onLoad,
		stop:     make(chan struct{}),
	}
	e.minVersion, _ = parseVersion(cfg.MinVersion)
	if cfg.MaxHandshakes > 0 {
		e.hs = make(chan struct{}, cfg.MaxHandshakes)
	}
	for _, p := range cfg.SNIAllow {
		e.sniAllow = append(e.sniAllow, normName(p))
	}
	for _, r := range cfg.PassthroughRoutes {
		e.routes = append(e.routes, normName(r.SNI))
	}
	e.certs.Store(newCertSet(nil))

	if cfg.Terminates() {
		e.serverConf = &tls.Config{
			MinVersion: e.minVersion,
			NextProtos: cfg.ALPN,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if c := e.certs.Load().pick(hello); c != nil {
					return c, nil
				}
				return nil, errNoCertificate
			},
		}
		e.slots = make([]*tls.Certificate, len(cfg.Certificates))
		for i, cf := range cfg.Certificates {
			i, cf := i, cf
			e.sources = append(e.sources, &source{
				name:  fmt.Sprintf("certificates[%d]", i),
				files: filewatch.NewFiles(cf.Cert, cf.Key),
				load: func() error {
					c, err := loadPair(cf.Cert, cf.Key)
					if err != nil {
						return err
					}
					e.warnValidity(cf.Cert, c.Leaf)
					e.mu.Lock()
					e.slots[i] = c
					e.certs.Store(newCertSet(e.slots))
					e.mu.Unlock()
					return nil
				},
			})
		}
	}
	if cfg.OriginTLS() {
		omin, _ := parseVersion(cfg.Origin.MinVersion)
		e.originConf = &tls.Config{
			MinVersion:         omin,
			InsecureSkipVerify: cfg.Mode == ModeFull, // full: encrypted, not verified (Spectrum "Full")
			ClientSessionCache: tls.NewLRUClientSessionCache(256),
		}
		if o := cfg.Origin; o.Cert != "" {
			e.originConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if c := e.originCert.Load(); c != nil {
					return c, nil
				}
				return &tls.Certificate{}, nil // no certificate: the origin decides
			}
			e.sources = append(e.sources, &source{
				name:  "origin client certificate",
				files: filewatch.NewFiles(o.Cert, o.Key),
				load: func() error {
					c, err := loadPair(o.Cert, o.Key)
					if err != nil {
						return err
					}
					e.originCert.Store(c)
					return nil
				},
			})
		}
		if f := cfg.Origin.CAFile; f != "" && cfg.Mode == ModeStrict {
			e.sources = append(e.sources, &source{
				name:  "origin.ca_file",
				files: filewatch.NewFiles(f),
				load: func() error {
					pool, err := loadPool(f)
					if err != nil {
						return err
					}
					e.roots.Store(pool)
					return nil
				},
			})
		}
	}

	for _, s := range e.sources {
		e.runLoad(s, false)
	}
	if len(e.sources) > 0 {
		e.poll = filewatch.Start(cfg.ReloadInterval, func() { _ = e.Reload(false) })
	}
	return e, nil
}

// runLoad loads one source and records the outcome.
func (e *Edge) runLoad(s *source, reload bool) {
	err := s.load()
	e.mu.Lock()
	if err != nil {
		e.problems[s.name] = err
	} else {
		delete(e.problems, s.name)
	}
	e.mu.Unlock()
	switch {
	case err != nil && reload:
		e.logger.Error("tls: reload failed; keeping the previous version", "source", s.name, "error", err)
	case err != nil:
		e.logger.Error("tls: load failed; connections that need it will fail until the file is fixed", "source", s.name, "error", err)
	case reload:
		e.logger.Info("tls: reloaded", "source", s.name, "files", s.files.Paths())
	}
	if e.onLoad != nil {
		e.onLoad(s.name, err)
	}
}

func (e *Edge) warnValidity(file string, leaf *x509.Certificate) {
	now := time.Now()
	if now.After(leaf.NotAfter) {
		e.logger.Warn("tls: certificate has expired; serving it anyway", "file", file, "not_after", leaf.NotAfter)
	} else if now.Before(leaf.NotBefore) {
		e.logger.Warn("tls: certificate is not valid yet; serving it anyway", "file", file, "not_before", leaf.NotBefore)
	}
}

// Reload re-reads the certificate and CA files that changed on disk since
// they were last looked at (every one with force) and installs what loads;
// a source that fails keeps its previous version. It returns Ready's
// answer. The watcher calls Reload(false) every reload_interval: polling
// (rather than inotify) survives editors and secret managers that replace
// files by rename or swap a symlinked directory, and costs a few stat
// calls per app per interval.
func (e *Edge) Reload(force bool) error {
	e.reload.Lock()
	defer e.reload.Unlock()
	for _, s := range e.sources {
		if force {
			s.files.Look()
		} else if !s.files.Changed() {
			continue
		}
		e.runLoad(s, true)
	}
	return e.Ready()
}

// Ready returns why a configured file is not in use (joined, one per
// source), or nil when every certificate and CA file loaded.
func (e *Edge) Ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, s := range e.sources {
		if err := e.problems[s.name]; err != nil {
			errs = append(errs, fmt.Errorf("tls %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close stops the file watcher and waits for a reload in progress.
func (e *Edge) Close() error {
	e.closeMu.Do(func() { close(e.stop) })
	e.poll.Close()
	return nil
}

// Mode is the app's TLS mode.
func (e *Edge) Mode() string { return e.cfg.Mode }

// Config is the defaulted configuration the Edge was built from.
func (e *Edge) Config() Config { return e.cfg }

// NeedsPeek reports whether a mode-off app must read the ClientHello before
// choosing an origin (SNI routes, an SNI allow list, or peek_sni to log
// the SNI). Peeking delays
// protocols where the server speaks first by up to handshake_timeout, so
// apps without any of them skip it.
func (e *Edge) NeedsPeek() bool {
	return e.cfg.Mode == ModeOff && (len(e.routes) > 0 || len(e.sniAllow) > 0 || e.cfg.PeekSNI)
}

// sniAllowed applies sni_allow; with no list every name (and none) passes.
func (e *Edge) sniAllowed(sni string) bool {
	if len(e.sniAllow) == 0 {
		return true
	}
	if sni == "" {
		return false
	}
	n := normName(sni)
	for _, p := range e.sniAllow {
		if nameMatches(p, n) {
			return true
		}
	}
	return false
}

// RouteFor returns the index in Config.PassthroughRoutes of the route for
// sni: the first exact match, else the first wildcard match.
func (e *Edge) RouteFor(sni string) (routeIndex int, ok bool) {
	if sni == "" || len(e.routes) == 0 {
		return 0, false
	}
	n := normName(sni)
	for i, p := range e.routes {
		if p == n {
			return i, true
		}
	}
	for i, p := range e.routes {
		if nameMatches(p, n) {
			return i, true
		}
	}
	return 0, false
}

// failedTLS is the client leg of a handshake that did not complete.
func failedTLS(status, sni string) event.TLS {
	return event.TLS{Protocol: event.TLSProtocolUnknown, Cipher: event.TLSCipherUnknown, Status: status, ServerName: sni}
}

// sendAlert writes a fatal TLS alert record. It is best effort: the
// connection is closed right after by the caller anyway.
func sendAlert(w io.Writer, desc byte) {
	_, _ = w.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, desc})
}

// refuseName ends a handshake over its server name: one that sni_allow
// does not admit, or one that cannot be a host name (errInvalidSNI, sni
// then cut for the log). Either is tlsError 400 INVALID_SNI, with the
// unrecognized_name alert; it returns that status.
func refuseName(conn net.Conn, ev *event.Event, sni string) int {
	ev.ClientTLS = failedTLS(StatusInvalidSNI, sni)
	sendAlert(conn, alertUnrecognizedName)
	return event.StatusInvalidSNI
}

// Terminate reads the ClientHello and runs the server handshake (modes
// flexible, full, strict) under the handshake timeout, filling ev.ClientTLS.
// On failure it returns the Spectrum status of the tlsError event:
// 400 INVALID_SNI (SNI not allowed, longer than a DNS name, not ASCII, or
// ending in a dot), 443 HANDSHAKE_FAILED (not TLS, too old a
// version, handshake error or timeout), 540 INVALID_CONFIG (no usable
// certificate), 500 INTERNAL_ERROR. The caller closes conn on failure.
//
// ctx is the connection's own: when it is done (the proxy stopped the
// connection), a wait for a handshake slot ends, and Terminate fails with
// 500 INTERNAL_ERROR, whatever else went wrong. The caller wakes the
// handshake itself with a past deadline on conn; since Terminate sets and
// clears conn's deadline, it checks ctx after each, so that no stop is
// undone.
func (e *Edge) Terminate(ctx context.Context, conn net.Conn, ev *event.Event) (tc *tls.Conn, status int, err error) {
	ev.TLSMode = e.cfg.Mode
	if e.serverConf == nil {
		ev.ClientTLS = failedTLS(StatusInternalError, "")
		return nil, event.StatusInternal, fmt.Errorf("tls terminate: mode %s does not terminate TLS", e.cfg.Mode)
	}
	defer func() {
		if err != nil && ctx.Err() != nil {
			ev.ClientTLS = failedTLS(StatusInternalError, ev.ClientTLS.ServerName)
			tc, status, err = nil, event.StatusInternal, fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()
	deadline := time.Now().Add(e.cfg.HandshakeTimeout)
	if err := conn.SetDeadline(deadline); err != nil {
		ev.ClientTLS = failedTLS(StatusInternalError, "")
		return nil, event.StatusInternal, fmt.Errorf("tls terminate: set handshake deadline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, event.StatusInternal, fmt.Errorf("tls terminate: %w", err)
	}
	hello, peeked, err := readClientHello(conn)
	sni := hello.serverName
	if errors.Is(err, errInvalidSNI) {
		return nil, refuseName(conn, ev, sni), fmt.Errorf("tls handshake: %w", err)
	}
	if err != nil {
		ev.ClientTLS = failedTLS(StatusHandshakeFailed, "")
		if errors.Is(err, errBadHello) {
			sendAlert(conn, 50) // decode_error
		}
		return nil, event.StatusClientHandshake, fmt.Errorf("tls handshake: read ClientHello (%d bytes): %w", len(peeked), err)
	}
	if strings.HasSuffix(sni, ".") {
		// RFC 6066 forbids the trailing dot and crypto/tls refuses such a
		// hello with a bare decode_error (443 "error decoding message").
		// Refused here, it says why, and as what it is: a bad name.
		return nil, refuseName(conn, ev, sni), fmt.Errorf("tls handshake: server name %q ends in a dot, which TLS does not allow (RFC 6066)", sni)
	}
	if !e.sniAllowed(sni) {
		return nil, refuseName(conn, ev, sni), fmt.Errorf("tls handshake: server name %q is not in sni_allow", sni)
	}
	if hello.maxVersion < e.minVersion {
		ev.ClientTLS = failedTLS(StatusHandshakeFailed, sni)
		sendAlert(conn, alertProtocolVersion)
		return nil, event.StatusClientHandshake, fmt.Errorf("tls handshake: client offers at most %s, minimum is %s",
			versionText(hello.maxVersion), ProtocolName(e.minVersion))
	}
	if len(e.certs.Load().all) == 0 {
		ev.ClientTLS = failedTLS(StatusInvalidConfig, sni)
		sendAlert(conn, alertInternalError)
		return nil, event.StatusEdgeTLSConfig, fmt.Errorf("tls handshake for %q: %w (%v)", sni, errNoCertificate, e.Ready())
	}
	release, err := e.acquireHandshake(ctx, deadline)
	if err != nil {
		ev.ClientTLS.ServerName = sni
		return nil, event.StatusFiltered, err
	}
	tc = tls.Server(&prefixConn{Conn: conn, prefix: peeked}, e.serverConf)
	err = tc.Handshake()
	release()
	if err != nil {
		ev.ClientTLS = failedTLS(StatusHandshakeFailed, sni)
		if errors.Is(err, errNoCertificate) { // every certificate vanished between the check and now
			ev.ClientTLS.Status = StatusInvalidConfig
			return nil, event.StatusEdgeTLSConfig, fmt.Errorf("tls handshake for %q: %w", sni, err)
		}
		return nil, event.StatusClientHandshake, fmt.Errorf("tls handshake for %q: %w", sni, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		ev.ClientTLS = failedTLS(StatusInternalError, sni)
		return nil, event.StatusInternal, fmt.Errorf("tls terminate: clear deadline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		ev.ClientTLS.ServerName = sni
		return nil, event.StatusInternal, fmt.Errorf("tls terminate: after the handshake: %w", err)
	}
	st := tc.ConnectionState()
	ev.ClientTLS = event.TLS{
		Protocol:   ProtocolName(st.Version),
		Cipher:     CipherName(st.CipherSuite),
		Status:     StatusOK,
		ServerName: sni,
	}
	return tc, event.StatusConnect, nil
}

func versionText(v uint16) string {
	if n := ProtocolName(v); n != event.TLSProtocolUnknown {
		return n
	}
	return fmt.Sprintf("0x%04x", v)
}

// Peek (mode off) reads the ClientHello without terminating TLS, under the
// handshake timeout. It returns the SNI (also written to ev.ClientTLS
// .ServerName, with Protocol "unknown" since the version is negotiated
// end to end) and every byte read, which the caller must send to the origin
// before relaying the rest. Input that is not TLS, or a client that sends
// nothing before the timeout, passes with sni "" and no error, unless
// sni_allow is set: then, like a name that is not allowed, it ends with
// 400 INVALID_SNI. A server name longer than a DNS name, or not ASCII,
// is 400 with or without sni_allow. A read error other than EOF or the timeout is 443.
// ctx is the connection's own, as for Terminate: once it is done Peek
// fails with 500 INTERNAL_ERROR (a peek cut short is no client's silence).
func (e *Edge) Peek(ctx context.Context, conn net.Conn, ev *event.Event) (sni string, peeked []byte, status int, err error) {
	ev.TLSMode = e.cfg.Mode
	if err := conn.SetReadDeadline(time.Now().Add(e.cfg.HandshakeTimeout)); err != nil {
		return "", nil, event.StatusInternal, fmt.Errorf("tls peek: set deadline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		ev.ClientTLS = failedTLS(StatusInternalError, "")
		return "", nil, event.StatusInternal, fmt.Errorf("tls peek: %w", err)
	}
	hello, peeked, rerr := readClientHello(conn)
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return "", peeked, event.StatusInternal, fmt.Errorf("tls peek: clear deadline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		ev.ClientTLS = failedTLS(StatusInternalError, hello.serverName)
		return "", peeked, event.StatusInternal, fmt.Errorf("tls peek: read ClientHello (%v): %w", rerr, err)
	}
	if errors.Is(rerr, errInvalidSNI) { // refused whether or not sni_allow is set: no route may see a cut name
		return "", peeked, refuseName(conn, ev, hello.serverName), fmt.Errorf("tls peek: %w", rerr)
	}
	if rerr == nil {
		sni = hello.serverName
		ev.ClientTLS = event.TLS{Protocol: event.TLSProtocolUnknown, Cipher: event.TLSCipherUnknown,
			Status: event.TLSStatusUnknown, ServerName: sni}
	}
	var ne net.Error
	benign := rerr == nil || errors.Is(rerr, errNotTLS) || errors.Is(rerr, errBadHello) ||
		errors.Is(rerr, io.ErrUnexpectedEOF) || errors.Is(rerr, io.EOF) ||
		(errors.As(rerr, &ne) && ne.Timeout())
	if !benign {
		ev.ClientTLS.Status = StatusHandshakeFailed
		return "", peeked, event.StatusClientHandshake, fmt.Errorf("tls peek: read ClientHello: %w", rerr)
	}
	if !e.sniAllowed(sni) {
		if rerr == nil {
			return sni, peeked, refuseName(conn, ev, sni), fmt.Errorf("tls peek: server name %q is not in sni_allow", sni)
		}
		ev.ClientTLS = failedTLS(StatusInvalidSNI, sni)
		return "", peeked, event.StatusInvalidSNI, fmt.Errorf("tls peek: no ClientHello to check against sni_allow: %w", rerr)
	}
	return sni, peeked, event.StatusConnect, nil
}

// originServerName picks the name sent to (and in strict mode verified
// against) the origin: origin.server_name, else the origin's DNS name, else
// the client's SNI, else the origin IP.
func (e *Edge) originServerName(ev *event.Event) string {
	switch {
	case e.cfg.Origin.ServerName != "":
		return e.cfg.Origin.ServerName
	case ev.OriginName != "":
		return ev.OriginName
	case ev.ClientTLS.ServerName != "":
		return ev.ClientTLS.ServerName
	case ev.OriginAddr.IsValid():
		return ev.OriginAddr.Addr().Unmap().String()
	}
	return ""
}

// DialTLS runs the client handshake on a dialed origin connection (modes
// full and strict) under ctx and the handshake timeout, and fills
// ev.OriginTLS, including Fingerprint: the lowercase hex SHA-256 of the leaf
// certificate, which is recorded even when strict verification rejects it.
// On failure ev.OriginTLS.Status is HANDSHAKE_FAILED (INVALID_CONFIG when
// the CA file never loaded) and the caller emits originError 520 (524,
// a close by the proxy, when the proxy stopped the connection).
func (e *Edge) DialTLS(ctx context.Context, conn net.Conn, ev *event.Event) (*tls.Conn, error) {
	ev.TLSMode = e.cfg.Mode
	name := e.originServerName(ev)
	sentSNI := name
	if _, err := netip.ParseAddr(name); err == nil {
		sentSNI = "" // crypto/tls sends no SNI for an IP, and verifies IP SANs
	}
	ev.OriginTLS = event.TLS{Protocol: event.TLSProtocolUnknown, Cipher: event.TLSCipherUnknown,
		Status: StatusHandshakeFailed, ServerName: sentSNI}
	if e.originConf == nil {
		ev.OriginTLS.Status = StatusInternalError
		return nil, fmt.Errorf("origin tls: mode %s does not speak TLS to origins", e.cfg.Mode)
	}
	cfg := e.originConf.Clone()
	cfg.ServerName = name
	if e.cfg.Mode == ModeStrict && e.cfg.Origin.CAFile != "" {
		roots := e.roots.Load()
		if roots == nil {
			ev.OriginTLS.Status = StatusInvalidConfig
			return nil, fmt.Errorf("origin tls: CA file %s is not loaded: %v", e.cfg.Origin.CAFile, e.Ready())
		}
		cfg.RootCAs = roots
	}
	if name == "" && !cfg.InsecureSkipVerify {
		ev.OriginTLS.Status = StatusInvalidConfig
		return nil, errors.New("origin tls: no server name to verify the origin against; set tls.origin.server_name")
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
			ev.OriginTLS.Fingerprint = Fingerprint(ve.UnverifiedCertificates[0].Raw)
		}
		return nil, fmt.Errorf("origin tls handshake with %s (server name %q): %w", originText(ev), name, err)
	}
	st := tc.ConnectionState()
	ev.OriginTLS.Protocol = ProtocolName(st.Version)
	ev.OriginTLS.Cipher = CipherName(st.CipherSuite)
	ev.OriginTLS.Status = StatusOK
	if len(st.PeerCertificates) > 0 {
		ev.OriginTLS.Fingerprint = Fingerprint(st.PeerCertificates[0].Raw)
	}
	return tc, nil
}

func originText(ev *event.Event) string {
	if ev.OriginPath != "" {
		return ev.OriginPath
	}
	return ev.OriginAddr.String()
}

// Fingerprint is the lowercase hex SHA-256 of a DER certificate, as
// Spectrum's OriginTlsFingerprint.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// WithPrefix returns a conn that reads prefix before reading c. The proxy
// uses it when an inbound PROXY header was read with bytes of the client's
// stream past it: those bytes are the start of the ClientHello, so Terminate
// and Peek must see them (Peek's peeked result then includes them). With an
// empty prefix it returns c itself.
func WithPrefix(c net.Conn, prefix []byte) net.Conn {
	if len(prefix) == 0 {
		return c
	}
	return &prefixConn{Conn: c, prefix: prefix}
}

// prefixConn replays bytes already read from a connection before reading
// from it again.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// NetConn returns the wrapped connection, so that the TCP socket under a
// TLS connection can still be reached (TCP_INFO for the RTT, keepalive).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Certificate is one edge certificate in use and when it expires.
type Certificate struct {
	Name string // the leaf's first DNS name, else its common name
	// KeyType is the leaf's public key algorithm (rsa, ecdsa, ed25519):
	// what tells apart an RSA and an ECDSA certificate for one name,
	// which an edge may serve side by side.
	KeyType  string
	NotAfter time.Time
}

// Certificates returns the edge certificates in use, in config order.
func (e *Edge) Certificates() []Certificate {
	set := e.certs.Load()
	if set == nil {
		return nil
	}
	out := make([]Certificate, 0, len(set.all))
	for _, ec := range set.all {
		c := ec.cert
		name := c.Leaf.Subject.CommonName
		if len(c.Leaf.DNSNames) > 0 {
			name = c.Leaf.DNSNames[0]
		}
		out = append(out, Certificate{Name: name, KeyType: strings.ToLower(c.Leaf.PublicKeyAlgorithm.String()), NotAfter: c.Leaf.NotAfter})
	}
	return out
}
