package proxy

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/netspec"
)

// Listeners are bound listening sockets by netspec.ListenKey, handed from a server
// to the one that replaces it (config reload) so that an address that
// stays in the config keeps its socket: no SYN is refused while the new
// server takes over, and connections waiting in the backlog are accepted
// by the new one.
type Listeners map[string]net.Listener

// take removes and returns the listener for key, nil if there is none.
func (ls Listeners) take(key string) net.Listener {
	ln := ls[key]
	if ln == nil {
		return nil
	}
	for k, v := range ls { // and its other names (FileListeners)
		if v == ln {
			delete(ls, k)
		}
	}
	return ln
}

// Close closes every listener left (not taken by a server).
func (ls Listeners) Close() {
	for k, ln := range ls {
		_ = ln.Close() // a second name of a closed listener: a harmless error
		delete(ls, k)
	}
}

// WithListeners makes the server use these bound sockets for the addresses
// they match instead of binding new ones (those it takes are removed from
// ls; the caller closes the rest).
func WithListeners(ls Listeners) Option {
	return func(s *Server) { s.inherit = ls }
}

type deadliner interface{ SetDeadline(time.Time) error }

// HandOff stops accepting on every listener without closing those whose
// key keep wants, and returns them for the server that replaces this one;
// the others are closed. Connections already accepted go on; Shutdown
// drains them later and leaves the handed sockets open.
func (s *Server) HandOff(keep func(key string) bool) Listeners {
	out := Listeners{}
	if s.closing.Load() || s.handingOff.Swap(true) {
		return out
	}
	close(s.handoff)
	for _, l := range s.app.listeners {
		l.interrupt(time.Unix(1, 0)) // wakes a blocked Accept
	}
	s.accepts.Wait()
	for _, l := range s.app.listeners {
		if key := l.key; keep(key) {
			if d, ok := l.ln.(deadliner); ok {
				_ = d.SetDeadline(time.Time{})
			}
			l.handed = true
			out[l.key] = l.ln
			continue
		}
		_ = l.ln.Close()
		l.handed = true // closed here already
	}
	return out
}

// ListenKeys are the sockets the server binds, by netspec.ListenKey.
func (s *Server) ListenKeys() []string { return netspec.ListenKeys("tcp", s.app.cfg.Listen) }

// Inherit makes Start use the sockets of ls (from the replaced server's
// HandOff) for the addresses they match; it takes those it uses out of ls.
// Call it before Start.
func (s *Server) Inherit(ls Listeners) { s.inherit = ls }

// Files duplicates every listening socket the server accepts on, by
// netspec.ListenKey, for a new process to inherit (binary upgrade). The caller
// closes them once handed.
func (s *Server) Files() (map[string]*os.File, error) {
	out := map[string]*os.File{}
	for _, l := range s.app.listeners {
		if l.handed || l.key == "" || strings.HasSuffix(l.key, ":0") {
			continue
		}
		fl, ok := l.ln.(interface{ File() (*os.File, error) })
		if !ok {
			continue
		}
		f, err := fl.File()
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("app %s: %s: %w", s.app.cfg.ID, l.key, err)
		}
		out[l.key] = f
	}
	return out, nil
}

// FileListeners turns inherited sockets into Listeners: stream sockets by
// key (a key names the listen address it was bound for), or, for keys that
// are "", by the socket's own address (systemd socket activation). A wildcard
// address also answers to the key of the empty host (":443").
func FileListeners(files map[*os.File]string) (Listeners, error) {
	out := Listeners{}
	for f, key := range files {
		ln, err := net.FileListener(f)
		if err != nil {
			return nil, fmt.Errorf("inherited socket %s: %w", f.Name(), err)
		}
		f.Close()
		if key != "" {
			out[key] = ln
			continue
		}
		switch ad := ln.Addr().(type) {
		case *net.TCPAddr:
			out[netspec.ListenKey("tcp", ad.String())] = ln
			if ad.IP.IsUnspecified() {
				out[netspec.ListenKey("tcp", net.JoinHostPort("", strconv.Itoa(ad.Port)))] = ln
			}
		case *net.UnixAddr:
			out[netspec.ListenKey("unix", ad.Name)] = ln
		}
	}
	return out, nil
}

// WithGlobalSlots makes the server share slots, the config's global
// max_connections, with the other servers of the same daemon (one server
// per app).
func WithGlobalSlots(slots chan struct{}) Option {
	return func(s *Server) {
		if slots != nil {
			s.gsem = slots
		}
	}
}
