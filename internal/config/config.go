// Package config loads prism's YAML configuration and checks every value
// before anything listens. Each component owns the struct of its own section
// (origins, tls, ip_firewall, udp, log_jobs, admin) and its Validate method; this
// package decodes the file strictly (unknown keys are errors), applies
// defaults, runs every Validate, checks what spans sections (port ranges
// against origin ranges, unique ids), and reports each problem as
// "file:line: key: reason" (cfgerr.Fold) so an operator can go straight
// to it. It is the one place that defaults and validates: the
// constructors the daemon hands these sections to trust them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/admin"
	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/netspec"
	"github.com/prismproxy/prism/internal/origin"
	"github.com/prismproxy/prism/internal/tlsedge"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// Config is the whole file.
type Config struct {
	Node     Node            `yaml:"node"`
	GeoIP    geo.Config      `yaml:"geoip"`
	Shutdown Shutdown        `yaml:"shutdown"`
	Log      Diagnostic      `yaml:"log"`
	Apps     []App           `yaml:"apps"`
	LogJobs  []logjob.Config `yaml:"log_jobs"`
	// MaxConnections bounds the TCP connections of all apps together (0:
	// no limit), next to each app's max_connections: at the limit prism
	// stops accepting and new clients wait in the kernel's backlog.
	MaxConnections int `yaml:"max_connections"`

	Admin admin.Config `yaml:"admin"`

	// File is the path the config was read from.
	File string `yaml:"-"`

	idx *index // key paths to lines, for problems found after Parse
}

// Unindexed is a copy of c without its key-to-line index, for comparing two
// loads by value: reflect.DeepEqual follows the index, which differs as
// soon as a line moves (a comment, an app added above).
func (c *Config) Unindexed() Config {
	x := *c
	x.idx = nil
	return x
}

// Issue returns an Issue for key with its line in the file (the line of
// its nearest ancestor present), for checks made after Parse.
func (c *Config) Issue(key, format string, args ...any) *Issue {
	is := &Issue{Key: key, Msg: fmt.Sprintf(format, args...)}
	if c.idx != nil {
		is.Line = c.idx.line(key)
	}
	return is
}

// Node is this proxy's identity in every record.
type Node struct {
	Colo       string `yaml:"colo"`        // IATA-style location code (ColoCode, gatewayRegion)
	ID         string `yaml:"id"`          // node id (gatewayId)
	RegionName string `yaml:"region_name"` // human name of the location (gatewayRegionName)
}

// Shutdown controls the graceful stop on SIGINT/SIGTERM.
type Shutdown struct {
	// DrainTimeout is how long open connections may go on after the
	// listeners close; the rest are then closed with a recorded cause.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Diagnostic configures the proxy's own log (not connection events).
type Diagnostic struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// App is one proxied service.
type App struct {
	ID             string        `yaml:"id"`
	Protocol       string        `yaml:"protocol"` // tcp | udp
	Listen         []string      `yaml:"listen"`
	Origins        origin.Config `yaml:"origins"`
	ProxyProtocol  string        `yaml:"proxy_protocol"` // off | v1 | v2 | simple
	InboundProxy   InboundProxy  `yaml:"inbound_proxy_protocol"`
	Timeouts       Timeouts      `yaml:"timeouts"`
	MaxConnections int           `yaml:"max_connections"`
	// RelayMode says how a tcp app moves bytes between two plain sockets:
	// auto (the default: small messages through a buffer, bulk with
	// splice(2)), splice or copy. See relay.Mode.
	RelayMode string `yaml:"relay_mode"`
	// OriginBlock lists CIDRs an origin must never resolve to. Unset means
	// origin.DefaultBlock; an empty list blocks nothing.
	OriginBlock []string        `yaml:"origin_block"`
	TLS         tlsedge.Config  `yaml:"tls"`
	IPFirewall  firewall.Config `yaml:"ip_firewall"`
	UDP         udpproxy.Config `yaml:"udp"`
	// Limits are per-client limits (see package limit).
	Limits limit.Config `yaml:"limits"`

	// timeoutsSet records whether the file set timeouts (before defaults),
	// to tell a udp app's operator that they have no effect there.
	timeoutsSet bool
	// relayModeSet likewise for relay_mode; udpSet for a udp section,
	// tlsSet for any tls key but mode, headerTimeoutSet for
	// inbound_proxy_protocol.header_timeout: each is for one protocol.
	relayModeSet, udpSet, tlsSet, headerTimeoutSet bool

	// Parsed forms, filled by Load.
	ListenSpecs []netspec.Listen `yaml:"-"`
	Trusted     []netip.Prefix   `yaml:"-"`
	Block       []netip.Prefix   `yaml:"-"`
}

// InboundProxy says which front load balancers may send a PROXY v1/v2
// header. A connection from any other address is never parsed for one.
type InboundProxy struct {
	TrustedCIDRs  []string      `yaml:"trusted_cidrs"`
	HeaderTimeout time.Duration `yaml:"header_timeout"`
}

// Timeouts of one app.
type Timeouts struct {
	Connect time.Duration `yaml:"connect"` // origin dial, per attempt
	Idle    time.Duration `yaml:"idle"`    // no bytes either way
}

// Defaults.
const (
	DefaultDrainTimeout  = 30 * time.Second
	DefaultConnect       = 5 * time.Second
	DefaultIdle          = time.Hour
	DefaultHeaderTimeout = 3 * time.Second
)

// Error is every problem found in one file, one per line:
// "file:line: key: reason" (see cfgerr.Errors).
type Error = cfgerr.Errors

// Issue is one problem: where, which key, why.
type Issue = cfgerr.Error

// MaxConfigBytes caps the size of a config file. Decoding YAML takes many
// times the file's size in memory (a 50 MB file took 1.3 GB); long lists of
// addresses belong in ip_firewall list files, which are read line by line.
const MaxConfigBytes = 1 << 20

// Load reads, decodes, defaults and validates the file at path, reading
// the files it names whose content validation checks: admin.token_file
// and the ip_firewall list files.
func Load(path string) (*Config, error) { return load(path, true) }

// LoadFileOnly is Load without reading any file the config names (the
// token file and list files Load reads): for `prism reload` and `prism
// upgrade`, which only need the pid file and signal a running prism that
// reads those files as its own user, and which the user who runs them may
// not be allowed to read. Every other check is Load's.
func LoadFileOnly(path string) (*Config, error) { return load(path, false) }

func load(path string, readNamed bool) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return parse(path, data, readNamed)
}

// Parse is Load for bytes already read; name is used in messages.
func Parse(name string, data []byte) (*Config, error) { return parse(name, data, true) }

// parse is Parse; readNamed reads the files the config names (Load and
// LoadFileOnly).
func parse(name string, data []byte, readNamed bool) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, cfgerr.Fold(name, []*Issue{{Msg: fmt.Sprintf(
			"config is larger than %d bytes (%d KiB): put long address lists in ip_firewall list files", MaxConfigBytes, MaxConfigBytes>>10)}})
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, cfgerr.Fold(name, yamlIssues(err, nil))
	}
	idx := newIndex(&root)
	cfg := &Config{File: name, idx: idx}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var issues []*Issue
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		issues = yamlIssues(err, idx)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, cfgerr.Fold(name, issues) // a syntax error: nothing more can be checked
		}
		for _, msg := range te.Errors {
			if strings.Contains(msg, "already defined at line") {
				// yaml.v3 leaves the whole sequence holding a duplicate
				// key undecoded: checking the rest would report what is
				// only missing from the decode ("no apps").
				return nil, cfgerr.Fold(name, issues)
			}
		}
		// Unknown keys and wrongly typed values leave the rest decoded:
		// check it too, so one run of validate shows every problem.
	}
	// ${NAME} references: unset variables are errors at their line; the
	// values replace the references before defaults and validation.
	issues = append(issues, envRefs(&root)...)
	expandAll(reflect.ValueOf(cfg))
	for i := range cfg.LogJobs {
		cfg.LogJobs[i].Destination.Expanded()
	}
	cfg.setDefaults()
	for _, ce := range cfg.validate(readNamed) {
		ce.Line = idx.line(ce.Key)
		issues = append(issues, ce)
	}
	cfgerr.SortByLine(issues)
	if err := cfgerr.Fold(name, issues); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) setDefaults() {
	if c.Shutdown.DrainTimeout == 0 {
		c.Shutdown.DrainTimeout = DefaultDrainTimeout
	}
	c.GeoIP.SetDefaults()
	for i := range c.LogJobs {
		c.LogJobs[i].SetDefaults()
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.Protocol == "" {
			a.Protocol = "tcp"
		}
		if a.ProxyProtocol == "" {
			a.ProxyProtocol = "off"
		}
		a.relayModeSet = a.RelayMode != ""
		if a.RelayMode == "" {
			a.RelayMode = "auto"
		}
		a.timeoutsSet = a.Timeouts != (Timeouts{})
		a.udpSet = a.UDP != (udpproxy.Config{})
		tlsKeys := a.TLS
		tlsKeys.Mode = ""
		a.tlsSet = !reflect.DeepEqual(tlsKeys, tlsedge.Config{})
		a.headerTimeoutSet = a.InboundProxy.HeaderTimeout != 0
		if a.Timeouts.Connect == 0 {
			a.Timeouts.Connect = DefaultConnect
		}
		if a.Timeouts.Idle == 0 {
			a.Timeouts.Idle = DefaultIdle
		}
		if a.InboundProxy.HeaderTimeout == 0 {
			a.InboundProxy.HeaderTimeout = DefaultHeaderTimeout
		}
		a.Origins.SetDefaults()
		a.TLS.SetDefaults()
		a.IPFirewall.SetDefaults()
		a.UDP.SetDefaults()
		a.Limits.SetDefaults()
	}
}

func (c *Config) validate(readNamed bool) []*cfgerr.Error {
	var errs cfgerr.List
	if c.Node.Colo == "" {
		errs.Add("node.colo", "missing: this node's location code (IATA style, e.g. SJC), written as ColoCode in every record")
	}
	if c.Shutdown.DrainTimeout < 0 {
		errs.Add("shutdown.drain_timeout", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.Add("log.level", "unknown level %q (use debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs.Add("log.format", "unknown format %q (use text or json)", c.Log.Format)
	}
	errs.Merge("geoip", c.GeoIP.Validate())
	errs.Merge("log_jobs", logjob.ValidateAll(c.LogJobs))
	if c.MaxConnections < 0 {
		errs.Add("max_connections", "must not be negative (0 means no limit)")
	}

	if readNamed {
		errs.Merge("admin", c.Admin.Validate())
	} else {
		errs.Merge("admin", c.Admin.ValidateUnread())
	}
	if len(c.Apps) == 0 {
		errs.Add("apps", "no apps: configure at least one app to proxy")
	}
	ids := map[string]int{}
	var binds bindSet
	for i := range c.Apps {
		key := cfgerr.Index("apps", i)
		a := &c.Apps[i]
		if prev, dup := ids[a.ID]; dup && a.ID != "" {
			errs.Add(key+".id", "duplicate app id %q (also apps[%d])", a.ID, prev)
		}
		ids[a.ID] = i
		errs.Merge(key, a.validate(readNamed))
		for j, l := range a.ListenSpecs {
			for p := int(l.Lo); l.Path == "" && l.Lo != 0 && p <= int(l.Hi); p++ {
				if other := binds.add(a.Protocol, l.Host, p, fmt.Sprintf("apps[%d].listen", i)); other != "" {
					errs.Add(cfgerr.Index(key+".listen", j), "port %d is already used by %s", p, other)
					break
				}
			}
		}
	}
	if host, port, err := net.SplitHostPort(c.Admin.Listen); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p > 0 {
			if other := binds.add("tcp", host, p, "admin.listen"); other != "" {
				errs.Add("admin.listen", "port %d is already used by %s", p, other)
			}
		}
	}
	return errs
}

// bindSet finds two listen addresses of the config that cannot both be
// bound: the same protocol and port, and hosts that overlap — the same
// address, or a wildcard and any address of its family ("" and "::" take
// both families, as Go binds them, "0.0.0.0" IPv4's). validate once
// compared the host strings, so ":443" beside "127.0.0.1:443" passed and
// prism run failed at the bind; two UDP apps with SO_REUSEPORT sockets on
// one port would both bind and split the port's clients between them.
type bindSet map[string][]bindUse

type bindUse struct{ host, where string }

// add records host:port for proto and returns where an overlapping one was
// configured, "" if none.
func (bs *bindSet) add(proto, host string, port int, where string) string {
	if *bs == nil {
		*bs = bindSet{}
	}
	k := proto + "/" + strconv.Itoa(port)
	for _, u := range (*bs)[k] {
		if hostsOverlap(u.host, host) {
			return u.where
		}
	}
	(*bs)[k] = append((*bs)[k], bindUse{host, where})
	return ""
}

func hostsOverlap(a, b string) bool {
	kind := func(h string) (string, netip.Addr) {
		h = strings.Trim(h, "[]")
		if h == "localhost" {
			h = "127.0.0.1"
		}
		ip, err := netip.ParseAddr(h)
		switch {
		case h == "" || err == nil && ip == netip.IPv6Unspecified():
			return "any", ip
		case err == nil && ip == netip.IPv4Unspecified():
			return "any4", ip
		case err == nil:
			return "ip", ip.Unmap()
		}
		return "name:" + h, ip
	}
	ka, ia := kind(a)
	kb, ib := kind(b)
	switch {
	case ka == "any" || kb == "any":
		return true
	case ka == "any4" && kb == "any4":
		return true
	case ka == "any4":
		return kb == "ip" && ib.Is4()
	case kb == "any4":
		return ka == "ip" && ia.Is4()
	case ka == "ip" && kb == "ip":
		return ia == ib
	}
	return ka == kb // two names: the same name
}

func (a *App) validate(readNamed bool) []*cfgerr.Error {
	var errs cfgerr.List
	if a.ID == "" {
		errs.Add("id", "missing: every app needs an id (written as Application/ServiceID)")
	} else if strings.IndexFunc(a.ID, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) >= 0 {
		errs.Add("id", "%q holds control or non-printable characters (it is written into every record and log line)", a.ID)
	}
	switch a.Protocol {
	case "tcp", "udp":
	default:
		errs.Add("protocol", "unknown protocol %q (use tcp or udp)", a.Protocol)
	}
	if len(a.Listen) == 0 {
		errs.Add("listen", "missing: give at least one listen address (host:port, host:low-high or unix:/path)")
	}
	a.ListenSpecs = a.ListenSpecs[:0]
	maxSpan := 0
	for i, s := range a.Listen {
		l, err := netspec.ParseListen(s)
		if err != nil {
			errs.Add(cfgerr.Index("listen", i), "%v", err)
			continue
		}
		if l.Path != "" && a.Protocol == "udp" {
			errs.Add(cfgerr.Index("listen", i), "unix sockets are for tcp apps only")
		}
		maxSpan = max(maxSpan, l.Ports())
		a.ListenSpecs = append(a.ListenSpecs, l)
	}
	errs.Merge("origins", a.Origins.Validate())
	errs.Merge("origins", a.Origins.ValidateFor(a.Protocol))
	errs.Merge("tls", a.TLS.Validate())
	if readNamed {
		errs.Merge("ip_firewall", a.IPFirewall.Validate())
	} else {
		errs.Merge("ip_firewall", a.IPFirewall.ValidateUnread())
	}
	errs.Merge("limits", a.Limits.Validate())
	if a.Limits.MaxTLSHandshakes > 0 && !a.TLS.Terminates() {
		errs.Add("limits.max_tls_handshakes", "only applies to a tcp app that terminates TLS (tls.mode flexible, full or strict)")
	}
	if a.Protocol == "udp" {
		errs.Merge("udp", a.UDP.Validate())
		if a.timeoutsSet {
			errs.Add("timeouts", "timeouts are for tcp apps; a udp app uses udp.idle_timeout")
		}
		if a.MaxConnections > 0 {
			errs.Add("max_connections", "max_connections is for tcp apps; a udp app uses udp.max_sessions and udp.max_sessions_per_client")
		}
		if a.relayModeSet {
			errs.Add("relay_mode", "relay_mode is for tcp apps; a udp app relays datagrams")
		}
		if a.tlsSet {
			errs.Add("tls", "tls settings are for tcp apps; a udp app takes only tls.mode: off")
		}
		if a.headerTimeoutSet {
			errs.Add("inbound_proxy_protocol.header_timeout", "header_timeout is for tcp apps; a udp app reads the header from each datagram")
		}
	} else if a.udpSet {
		errs.Add("udp", "the udp section is for udp apps (protocol: udp); this app is %s", a.Protocol)
	}
	switch a.RelayMode {
	case "auto", "splice", "copy":
	default:
		errs.Add("relay_mode", "unknown value %q (use auto, splice or copy)", a.RelayMode)
	}
	if a.Protocol == "udp" && a.TLS.Mode != "" && a.TLS.Mode != tlsedge.ModeOff {
		errs.Add("tls.mode", "TLS termination is for tcp apps only (Spectrum likewise); use off for udp")
	}
	if span := a.Origins.PortSpan(); span > 1 {
		for i, l := range a.ListenSpecs {
			if l.Path == "" && l.Ports() != span {
				errs.Add(cfgerr.Index("listen", i), "listen range %q has %d ports but the origin port range has %d: a range maps by offset, so the lengths must match", l.Raw, l.Ports(), span)
			}
		}
	}
	switch a.ProxyProtocol {
	case "off", "v1", "v2":
	case "simple":
		if a.Protocol != "udp" {
			errs.Add("proxy_protocol", "simple (Simple Proxy Protocol) is for udp apps only; use v1 or v2 for tcp")
		}
	default:
		errs.Add("proxy_protocol", "unknown value %q (use off, v1, v2 or simple)", a.ProxyProtocol)
	}
	if a.Protocol == "udp" && a.ProxyProtocol == "v1" {
		errs.Add("proxy_protocol", "v1 is a TCP-only format; use v2 or simple for udp")
	}
	a.Trusted = a.Trusted[:0]
	for i, s := range a.InboundProxy.TrustedCIDRs {
		p, err := netspec.ParsePrefix(s)
		if err != nil {
			errs.Add(cfgerr.Index("inbound_proxy_protocol.trusted_cidrs", i), "bad CIDR %q", s)
			continue
		}
		a.Trusted = append(a.Trusted, p)
	}
	if a.InboundProxy.HeaderTimeout < 0 {
		errs.Add("inbound_proxy_protocol.header_timeout", "must not be negative")
	}
	if a.Timeouts.Connect < 0 {
		errs.Add("timeouts.connect", "must not be negative")
	}
	if a.Timeouts.Idle < 0 {
		errs.Add("timeouts.idle", "must not be negative")
	}
	if a.MaxConnections < 0 {
		errs.Add("max_connections", "must not be negative (0 means no limit)")
	}
	if e := origin.ValidateBlock(a.OriginBlock); len(e) > 0 {
		errs.Merge("origin_block", e)
	} else {
		a.Block, _ = origin.ParseBlock(a.OriginBlock)
	}
	return errs
}
