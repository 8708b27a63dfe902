// Package netspec holds the parsed forms of the network addresses an
// operator writes in the config: listen entries ("host:port",
// "host:low-high", "unix:/path"), the key that names one listening socket
// across a reload, port ranges, and "CIDR or bare IP" prefixes. It is the
// one place each of these is parsed, shared by config, the data path
// (proxy, udpproxy, origin, firewall) and admin, and it imports nothing of
// prism's.
package netspec

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxListenRange bounds how many ports one listen entry may cover.
const MaxListenRange = 4096

// Listen is one parsed listen entry.
type Listen struct {
	Raw    string
	Host   string // "" for all addresses
	Lo, Hi uint16 // port range (Lo == Hi for one port; 0: an ephemeral port)
	Path   string // unix socket path
}

// Ports is how many ports the entry covers (0 for a unix socket).
func (l Listen) Ports() int {
	if l.Path != "" {
		return 0
	}
	return int(l.Hi-l.Lo) + 1
}

// ParseListen parses "host:port", "host:low-high", ":port" or "unix:/path".
// Port 0 is an ephemeral port, chosen by the kernel (handy for tests).
func ParseListen(s string) (Listen, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return Listen{}, fmt.Errorf("empty unix socket path")
		}
		return Listen{Raw: s, Path: p}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Listen{}, fmt.Errorf("bad listen address %q: want host:port, host:low-high or unix:/path", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return Listen{}, fmt.Errorf("bad listen host %q in %q: use an IP address", host, s)
		}
	}
	if port == "0" {
		return Listen{Raw: s, Host: host}, nil
	}
	lo, hi, err := ParsePortRange(port)
	if err != nil {
		return Listen{}, err
	}
	if int(hi-lo)+1 > MaxListenRange {
		return Listen{}, fmt.Errorf("port range %q is wider than %d ports", port, MaxListenRange)
	}
	return Listen{Raw: s, Host: host, Lo: lo, Hi: hi}, nil
}

// ParsePortRange parses "443" or "1000-1100".
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(a, 10, 16)
	if err != nil || l == 0 {
		return 0, 0, fmt.Errorf("bad port %q: want 1-65535 or a range like 1000-1100", s)
	}
	if !isRange {
		return uint16(l), uint16(l), nil
	}
	h, err := strconv.ParseUint(b, 10, 16)
	if err != nil || h == 0 || h < l {
		return 0, 0, fmt.Errorf("bad port range %q: want low-high with low <= high", s)
	}
	return uint16(l), uint16(h), nil
}

// ListenKey names one listening socket: "tcp 127.0.0.1:8000",
// "unix /run/x.sock". A reload hands a socket to the server that replaces
// the old one by this key.
func ListenKey(network, addr string) string { return network + " " + addr }

// ListenKeys are the sockets the entries bind on network ("tcp", "udp"),
// by ListenKey, one per port; a unix entry is "unix path". An ephemeral
// port has no key: it is a new socket every time.
func ListenKeys(network string, specs []Listen) []string {
	var out []string
	for _, spec := range specs {
		switch {
		case spec.Path != "":
			out = append(out, ListenKey("unix", spec.Path))
		case spec.Lo != 0:
			for p := int(spec.Lo); p <= int(spec.Hi); p++ {
				out = append(out, ListenKey(network, net.JoinHostPort(spec.Host, strconv.Itoa(p))))
			}
		}
	}
	return out
}

// ParsePrefix parses a CIDR prefix ("10.0.0.0/8") or a bare IP address
// (taken as a one-address prefix) and returns it masked. The error is
// plain; each caller words its own for its key.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
