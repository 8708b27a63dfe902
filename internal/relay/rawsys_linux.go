//go:build linux

package relay

import (
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls that never sleep (on non-blocking sockets, an epoll set,
// TCP_INFO), made raw: without the runtime's entersyscall/exitsyscall,
// which cost about a tenth of a microsecond each and, after an idle
// spell, wake sysmon (see rawRecv). The short-connection path makes
// about a dozen of them per connection, a small message two.

// rawRecv and rawSend are recv(2) and send(2) on a non-blocking socket
// without telling the runtime a system call is under way (RawSyscall). Such
// a call never blocks, and the bookkeeping it skips is what kept the
// runtime's sysmon thread busy under interactive load: each entersyscall
// after the process had been idle woke sysmon with a futex, and a write
// that spent more than sysmon's 20 µs tick in the kernel (on loopback a
// write also runs the receiver's softirq) had its P retaken, which reset
// sysmon to polling every 20 µs. On the proxy's one CPU sysmon then took
// about 10 % of the CPU of a keep-alive load (perf, docs/benchmarks.md).
//
// recvfrom/sendto rather than read/write: they go to the socket layer
// directly, where read and write pass through the VFS (vfs_write,
// sock_write_iter) first; in a keep-alive profile that layer was 3.3 % of
// the proxy's CPU for write and 1.9 % for read, against 1.3 and 1.15 %
// for HAProxy's sendto and recvfrom. MSG_NOSIGNAL: a write to a reset
// connection returns EPIPE without raising SIGPIPE. Every descriptor the
// loop moves bytes between is a socket (TCP or unix stream).
func rawRecv(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func rawSend(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// epollWaitNow collects ready events without blocking. It is a raw system
// call: it never sleeps, so the runtime need not be told about it.
func epollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errnoErr(e)
}

func rawShutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(e)
}

func rawEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// fdRTT returns the smoothed RTT of a TCP socket (TCP_INFO reports µs);
// the TCPInfo stays on the stack.
func fdRTT(fd int) time.Duration {
	var info unix.TCPInfo
	if !tcpInfo(fd, &info) {
		return 0
	}
	return time.Duration(info.Rtt) * time.Microsecond
}

// tcpInfo reads TCP_INFO of socket fd into info; false when it cannot
// (not TCP, closed).
func tcpInfo(fd int, info *unix.TCPInfo) bool {
	n := uint32(unix.SizeofTCPInfo)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO, uintptr(unsafe.Pointer(info)), uintptr(unsafe.Pointer(&n)), 0)
	return e == 0
}

// fdQuiet returns how long the kernel has moved no bytes of TCP socket fd
// on its own, without the relay: since the earlier of the last data
// segment it sent (tcpi_last_data_sent) and the last acknowledgment its
// peer sent back (tcpi_last_ack_recv), the longer of the two times, in the
// milliseconds TCP_INFO counts them in
// (jiffies underneath: up to idleGrain coarse). Both are needed: a peer
// that stopped reading keeps acknowledging the kernel's zero-window probes
// (which carry no data), and the retransmissions to a peer that is gone
// are data nobody acknowledges; only a peer that takes bytes makes both
// recent. ok is false when TCP_INFO cannot be read (a closed socket).
func fdQuiet(fd int) (quiet time.Duration, ok bool) {
	var info unix.TCPInfo
	if !tcpInfo(fd, &info) {
		return 0, false
	}
	return time.Duration(max(info.Last_data_sent, info.Last_ack_recv)) * time.Millisecond, true
}

func rawSocket(family int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	return int(r), errnoErr(e)
}

func rawSetsockoptInt(fd, level, opt, v int) error {
	iv := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&iv)), 4, 0)
	return errnoErr(e)
}

func rawGetsockoptInt(fd, level, opt int) (int, error) {
	var iv int32
	n := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&iv)), uintptr(unsafe.Pointer(&n)), 0)
	return int(iv), errnoErr(e)
}

// canWatch: a direction whose source sent its EOF can watch that socket
// for an error (half.watch), through peerError.
const canWatch = true

// peerError takes the pending error of socket fd (SO_ERROR, which
// reading clears), nil if there is none.
func peerError(fd int) error {
	v, err := rawGetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil || v == 0 {
		return nil
	}
	return unix.Errno(v)
}

// rawSockaddr is a socket address in the kernel's layout, built without
// the allocations of unix.Sockaddr.
type rawSockaddr struct {
	any unix.RawSockaddrAny
	len uint32
}

func (sa *rawSockaddr) setInet(ap netip.AddrPort, zone uint32) int {
	a := ap.Addr()
	if a.Is4() {
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.any))
		p.Family = unix.AF_INET
		setPort(&p.Port, ap.Port())
		p.Addr = a.As4()
		sa.len = unix.SizeofSockaddrInet4
		return unix.AF_INET
	}
	p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.any))
	p.Family = unix.AF_INET6
	setPort(&p.Port, ap.Port())
	p.Addr = a.As16()
	p.Scope_id = zone
	sa.len = unix.SizeofSockaddrInet6
	return unix.AF_INET6
}

func (sa *rawSockaddr) setUnix(path string) bool {
	p := (*unix.RawSockaddrUnix)(unsafe.Pointer(&sa.any))
	if len(path) == 0 || len(path) >= len(p.Path) {
		return false
	}
	p.Family = unix.AF_UNIX
	for i := range len(path) {
		p.Path[i] = int8(path[i])
	}
	if path[0] == '@' {
		p.Path[0] = 0 // abstract
		sa.len = uint32(2 + len(path))
	} else {
		p.Path[len(path)] = 0
		sa.len = uint32(2 + len(path) + 1)
	}
	return true
}

// addrPort is the address in sa (IPv4, or IPv6 unmapped); ok is false
// for other families.
func (sa *rawSockaddr) addrPort() (netip.AddrPort, bool) {
	switch sa.any.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa.any))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), getPort(&p.Port)), true
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa.any))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr).Unmap(), getPort(&p.Port)), true
	}
	return netip.AddrPort{}, false
}

// setPort and getPort store and load a port in network byte order,
// whatever the host's.
func setPort(p *uint16, v uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(v>>8), byte(v)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

func rawConnect(fd int, sa *rawSockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(sa.len))
	return errnoErr(e)
}

func rawAccept4(fd int, sa *rawSockaddr) (int, error) {
	sa.len = unix.SizeofSockaddrAny
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(unsafe.Pointer(&sa.len)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(r), errnoErr(e)
}

func rawGetsockname(fd int, sa *rawSockaddr) error {
	sa.len = unix.SizeofSockaddrAny
	_, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&sa.any)), uintptr(unsafe.Pointer(&sa.len)))
	return errnoErr(e)
}
