package udpproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/netspec"
)

// Handoff is a UDP server's bound sockets, with the sessions they carry,
// given to the server that replaces it (config reload): the new server
// reads the same sockets, so no datagram meets a closed port, and
// datagrams of a session the old server opened still reach that session,
// which goes on with the old settings until it ends.
type Handoff struct {
	ls map[string]*listener
}

// Len is how many sockets the hand-over holds (a socket Adopt gave two
// names counts once).
func (h *Handoff) Len() int {
	if h == nil {
		return 0
	}
	seen := map[*listener]bool{}
	for _, l := range h.ls {
		seen[l] = true
	}
	return len(seen)
}

func listenKey(host string, port uint16) string {
	return netspec.ListenKey("udp", net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// ListenKeys are the sockets the server binds, as "udp host:port" (and
// "udp host:port#i" for the port's SO_REUSEPORT socket i > 0); an
// ephemeral port has none.
func (s *Server) ListenKeys() []string {
	var out []string
	for _, sp := range s.specs {
		for p := int(sp.lo); sp.lo != 0 && p <= int(sp.hi); p++ {
			for i := 0; i < max(s.app.UDP.Sockets, 1); i++ {
				out = append(out, socketKey(sp.host, uint16(p), i))
			}
		}
	}
	return out
}

// Inherit makes Start use the sockets of h (from the replaced server's
// HandOff) for the addresses they match. Call it before Start.
func (s *Server) Inherit(h *Handoff) {
	if h != nil {
		s.inherit = h.ls
	}
}

// HandOff stops reading the sockets whose key keep wants, without closing
// them, and returns them for the replacing server; its sessions stay open
// (replies still flow) until they end on their own or Drain ends them.
// Sockets not wanted keep being read until Drain or Shutdown.
func (s *Server) HandOff(keep func(key string) bool) *Handoff {
	h := &Handoff{ls: map[string]*listener{}}
	if s.closing.Load() || s.handedOff.Swap(true) {
		return h
	}
	var stopped []*listener
	for _, l := range s.listeners {
		if l.key != "" && keep(l.key) {
			l.handed = true
			stopped = append(stopped, l)
			_ = l.conn.SetReadDeadline(time.Unix(1, 0)) // ends the read loop
		}
	}
	for _, l := range stopped {
		<-l.loopDone
		_ = l.conn.SetReadDeadline(time.Time{})
		h.ls[l.key] = l
	}
	return h
}

// Drain stops opening sessions and waits until the open ones have ended
// (idle timeout, origin gone) or ctx is done, then shuts the server down:
// what is left ends with its terminal record.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.nSessions.Load() > 0 {
		select {
		case <-ctx.Done():
			return s.Shutdown(context.Background())
		case <-t.C:
		}
	}
	return s.Shutdown(ctx)
}

// bindOrInherit takes the inherited socket for host:port (socket idx of
// the port), or binds one on bindPort (port, or for the extra sockets of
// an ephemeral port the one its first socket got). t and reuseport are as
// for bind.
func (s *Server) bindOrInherit(host string, port, bindPort uint16, offset, idx int, t *table, reuseport bool) (*listener, error) {
	k := ""
	if port != 0 {
		k = socketKey(host, port, idx)
	}
	old := s.inherit[k]
	if k == "" || old == nil {
		l, err := s.bind(host, bindPort, offset, t, reuseport)
		if err == nil {
			l.key = k
		}
		return l, err
	}
	for ok, v := range s.inherit { // k and its other names (Adopt): Handoff.Close must not close it
		if v == old {
			delete(s.inherit, ok)
		}
	}
	l := &listener{srv: s, offset: offset, table: t, primary: t == nil, reuseport: reuseport,
		conn: old.conn, v6: old.v6, pktinfo: old.pktinfo, local: old.local, key: k, prev: old, loopDone: make(chan struct{})}
	// The socket is the same, its receive buffer this config's: a reload
	// or an upgrade that changed udp.receive_buffer applies it (an
	// inherited socket once kept the size it was bound with).
	if err := l.conn.SetReadBuffer(s.app.UDP.ReceiveBuffer); err != nil {
		s.log.Warn("cannot set the UDP receive buffer", "addr", l.local.String(), "bytes", s.app.UDP.ReceiveBuffer, "err", err)
	}
	if l.table == nil {
		l.table = newTable()
	}
	var err error
	if l.rc, err = l.conn.SyscallConn(); err != nil {
		return nil, err
	}
	if l.rep, err = newReplier(l); err != nil {
		return nil, err
	}
	l.readFn = l.readable
	l.sendFn = l.sendOrigin
	return l, nil
}

// socketKey is the hand-over key of socket idx of a listen port: the
// port's listenKey for its first socket, with "#idx" for the others.
func socketKey(host string, port uint16, idx int) string {
	k := listenKey(host, port)
	if idx > 0 {
		k += "#" + strconv.Itoa(idx)
	}
	return k
}

// PortKey is the key of the port's first socket for the key of any of its
// sockets ("udp host:port#i" → "udp host:port"); other keys are returned
// as they are. A reload hands over every socket of a port the new config
// still listens on, however many udp.sockets it asks for.
func PortKey(k string) string {
	if base, _, ok := strings.Cut(k, "#"); ok && strings.HasPrefix(k, "udp ") {
		return base
	}
	return k
}

// hasReuseport reports whether l's socket has SO_REUSEPORT set.
func hasReuseport(l *listener) bool {
	on := 0
	_ = l.rc.Control(func(fd uintptr) { on, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT) })
	return on == 1
}

// NewHandoff is an empty hand-over, to Merge several servers' into.
func NewHandoff() *Handoff { return &Handoff{ls: map[string]*listener{}} }

// Merge moves o's sockets into h.
func (h *Handoff) Merge(o *Handoff) {
	if o == nil {
		return
	}
	for k, l := range o.ls {
		h.ls[k] = l
	}
}

// Close closes the sockets nobody took and shuts down their servers'
// replies: for a hand-over whose new server could not start.
func (h *Handoff) Close() {
	for k, l := range h.ls {
		_ = l.conn.Close() // a second name of a closed socket: a harmless error
		delete(h.ls, k)
	}
}

// Files duplicates every socket the server reads, by listen key, for a
// new process to inherit (binary upgrade).
func (s *Server) Files() (map[string]*os.File, error) {
	out := map[string]*os.File{}
	for _, l := range s.listeners {
		if l.handed || l.key == "" {
			continue
		}
		f, err := l.conn.File()
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("udp app %s: %s: %w", s.id, l.key, err)
		}
		out[l.key] = f
	}
	return out, nil
}

// Adopt makes a hand-over of inherited UDP sockets (binary upgrade,
// systemd socket activation) by key; a key of "" is made from the
// socket's address, and a wildcard address (0.0.0.0, ::) is also named
// "udp :port".
func Adopt(conns map[*net.UDPConn]string) (*Handoff, error) {
	h := NewHandoff()
	for c, k := range conns {
		la := c.LocalAddr().(*net.UDPAddr)
		ap := la.AddrPort()
		l := &listener{conn: c, local: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), v6: la.IP.To4() == nil || ap.Addr().Is6() && !ap.Addr().Is4In6(), table: newTable()}
		host := ap.Addr().Unmap().String()
		if k == "" {
			k = listenKey(host, ap.Port())
			if ap.Addr().IsUnspecified() {
				// A wildcard socket also serves ":port", as for TCP
				// (proxy.FileListeners); whichever name a server takes,
				// bindOrInherit removes the other.
				h.ls[listenKey("", ap.Port())] = l
			}
		}
		if h2, _, err := net.SplitHostPort(strings.TrimPrefix(k, "udp ")); err == nil && (h2 == "" || h2 == "0.0.0.0" || h2 == "::") {
			l.pktinfo = true
			rc, err := c.SyscallConn()
			if err != nil {
				return nil, err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setPktinfo(fd, l.v6) }); err != nil {
				return nil, err
			}
			if serr != nil {
				return nil, fmt.Errorf("inherited udp socket %s: %w", k, serr)
			}
		}
		h.ls[k] = l
	}
	return h, nil
}
