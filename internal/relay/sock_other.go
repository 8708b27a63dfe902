//go:build !linux || portable

package relay

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"time"
)

// The raw path (sock_linux.go) needs the event loops: here SocksAvailable
// is false and callers use net.Conns.

// Sock is a kernel socket held as a raw descriptor (Linux only).
type Sock struct{}

var errNoSocks = errors.New("relay: raw sockets need the Linux event loop")

func (Sock) Close() error                                { return nil }
func (Sock) RTT() time.Duration                          { return 0 }
func (Sock) Write([]byte) error                          { return errNoSocks }
func SocksAvailable() bool                               { return false }
func Connect(netip.AddrPort, string) (Sock, bool, error) { return Sock{}, false, errNoSocks }
func NewSocks(Sock, Sock, Options) *Relay                { panic(errNoSocks) }

// Acceptor accepts connections as Socks (Linux only).
type Acceptor struct{}

func NewAcceptor(syscall.RawConn, bool) *Acceptor { return &Acceptor{} }
func (*Acceptor) Accept() (Sock, netip.AddrPort, netip.AddrPort, error) {
	return Sock{}, netip.AddrPort{}, netip.AddrPort{}, errNoSocks
}
func (Sock) WaitConnected(context.Context, netip.AddrPort, string, time.Time) error {
	return errNoSocks
}
