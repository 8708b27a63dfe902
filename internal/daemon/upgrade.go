package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/proxy"
	"github.com/prismproxy/prism/internal/udpproxy"
	"github.com/prismproxy/prism/internal/upgrade"
)

// WithInherited makes Start use these listening sockets (from the process
// that started this one, or from systemd socket activation) for the
// addresses they match instead of binding new ones; the ones no app wants
// are closed.
func WithInherited(fs []upgrade.File) Option { return func(o *options) { o.inherited = fs } }

// inheritedSockets sorts inherited files into stream and datagram sockets.
func inheritedSockets(fs []upgrade.File) (*sockets, error) {
	s := &sockets{tcp: proxy.Listeners{}, udp: udpproxy.NewHandoff()}
	streams := map[*os.File]string{}
	dgrams := map[*net.UDPConn]string{}
	for _, f := range fs {
		typ, err := unix.GetsockoptInt(int(f.File.Fd()), unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			return nil, fmt.Errorf("inherited fd %s: not a socket: %w", f.File.Name(), err)
		}
		switch typ {
		case unix.SOCK_STREAM:
			streams[f.File] = f.Key
		case unix.SOCK_DGRAM:
			pc, err := net.FilePacketConn(f.File)
			f.File.Close()
			if err != nil {
				return nil, fmt.Errorf("inherited udp socket: %w", err)
			}
			uc, ok := pc.(*net.UDPConn)
			if !ok {
				pc.Close()
				return nil, fmt.Errorf("inherited datagram socket %v is not UDP", pc.LocalAddr())
			}
			dgrams[uc] = f.Key
		default:
			f.File.Close()
			return nil, fmt.Errorf("inherited fd %s: socket type %d", f.File.Name(), typ)
		}
	}
	ls, err := proxy.FileListeners(streams)
	if err != nil {
		return nil, err
	}
	s.tcp = ls
	if s.udp, err = udpproxy.Adopt(dgrams); err != nil {
		return nil, err
	}
	return s, nil
}

// ListenFiles duplicates every listening socket of every app, named by its
// listen key, for a new process (binary upgrade). The caller closes them,
// and hands them on through upgrade.Spawn: their Fd would put the sockets,
// which this process still serves, in blocking mode.
func (d *Daemon) ListenFiles() ([]upgrade.File, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []upgrade.File
	closeAll := func() {
		for _, f := range out {
			f.File.Close()
		}
	}
	for _, id := range d.order {
		p := d.apps[id]
		var m map[string]*os.File
		var err error
		if p.udp != nil {
			m, err = p.udp.Files()
		} else {
			m, err = p.tcp.Files()
		}
		if err != nil {
			closeAll()
			return nil, err
		}
		for k, f := range m {
			out = append(out, upgrade.File{Key: k, File: f})
		}
	}
	if d.admin != nil {
		f, err := d.admin.File()
		if err != nil {
			closeAll()
			return nil, err
		}
		if f != nil {
			// Named by the address it was bound for, not by the config
			// now: after a reload that changed admin.listen, the new
			// process binds its own address instead of taking this one.
			out = append(out, upgrade.File{Key: adminKey(d.admin.Listen()), File: f})
		}
	}
	return out, nil
}

// adminKey names the admin listener's socket for admin.listen among the
// inherited ones.
func adminKey(listen string) string { return "admin " + listen }

// HandedOver is what the old process does once the new one serves: stop
// accepting and reading on every socket without closing any (the new
// process owns them now), so that Shutdown only drains. UDP sessions go
// on until they end or the drain deadline, their replies still reaching
// their clients; new datagrams of their clients reach the new process.
//
// The old process's admin listener stops at once: the new process serves
// the admin API on the same socket. Requests already in flight here get a
// second to finish, without mu held: most of them read under it. A
// reload among them is refused (errStopping), as during a Shutdown.
func (d *Daemon) HandedOver() {
	d.stopping.Store(true) // the old process only drains now: no reload (lockReload, swap)
	d.mu.Lock()
	all := func(string) bool { return true }
	for _, id := range d.order {
		p := d.apps[id]
		if p.udp != nil {
			_ = p.udp.HandOff(all)
		} else {
			_ = p.tcp.HandOff(all) // the sockets stay open in this process too, unused
		}
	}
	adm := d.admin
	d.admin = nil
	d.upgraded = true
	d.mu.Unlock()
	if adm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = adm.Shutdown(ctx)
		cancel()
	}
}
