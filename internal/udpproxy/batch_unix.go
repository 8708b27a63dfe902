//go:build unix

package udpproxy

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched socket I/O.
//
// golang.org/x/net/ipv4 and ipv6 ReadBatch/WriteBatch do call recvmmsg and
// sendmmsg, but ReadBatch returns each sender as a freshly allocated
// *net.UDPAddr (two allocations per datagram), and WriteBatch needs a
// net.Addr per message. The proxy's hot path must not allocate per
// datagram, so it calls recvmmsg/sendmmsg itself through the socket's
// syscall.RawConn (so the runtime poller still parks goroutines and Close
// is still safe) and decodes addresses straight into netip.AddrPort.

// batchSize is the number of datagrams one recvmmsg/sendmmsg moves.
const batchSize = 64

// headroom is kept in front of every received client datagram so a PROXY
// v2 (at most 16+36 bytes without TLVs) or SPP (38 bytes) header can be
// written in front of the payload without copying it.
const headroom = 64

// inboundRoom is the room a listener of an app with trusted front proxies
// keeps past max_datagram_size for the inbound PROXY header they put in
// front of a client's payload: max_datagram_size bounds the payload
// relayed, and a payload of that size behind a header must not be cut.
// It holds any v1 line (107 bytes) and a v2 header with IPv6 addresses
// (52 bytes) and 460 bytes of TLVs, or AF_UNIX ones (232) and 280.
const inboundRoom = 512

// oobSize holds one IP_PKTINFO or IPV6_PKTINFO control message.
const oobSize = 64

// mmsghdr is struct mmsghdr from <sys/socket.h>.
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
}

// batch is the memory of one recvmmsg/sendmmsg call: headers, iovecs,
// sender addresses, control messages and the datagram buffers. Batches are
// pooled and held only while a socket is readable, so an idle listener or
// session holds none.
type batch struct {
	hs    [batchSize]mmsghdr
	iov   [batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6
	oob   [batchSize][oobSize]byte
	slab  []byte
	slot  int

	// What the headers were last prepared for, and how many of the first
	// ones a receive or a send has changed since: re-preparing only those
	// keeps the cost of a wakeup proportional to the datagrams it moves.
	prepSkip  int
	prepNames bool
	prepOOB   bool
	dirty     int
}

type batchPool struct {
	slot int
	p    sync.Pool
}

// newBatchPool pools batches whose slots hold a received datagram of up to
// maxDatagram bytes after the headroom, and room more bytes (inboundRoom
// for an app with trusted fronts, else 0).
func newBatchPool(maxDatagram, room int) *batchPool {
	bp := &batchPool{slot: headroom + maxDatagram + room + 1} // +1: a datagram that fills the slot was truncated
	bp.p.New = func() any {
		return &batch{slab: make([]byte, batchSize*bp.slot), slot: bp.slot, prepSkip: -1}
	}
	return bp
}

func (bp *batchPool) get() *batch  { return bp.p.Get().(*batch) }
func (bp *batchPool) put(b *batch) { bp.p.Put(b) }

// buf returns slot i of the slab.
func (b *batch) buf(i int) []byte { return b.slab[i*b.slot : (i+1)*b.slot : (i+1)*b.slot] }

// prepareRecv points every header at its slot (after skip bytes of
// headroom), its sender address and, if oob, its control buffer.
func (b *batch) prepareRecv(skip int, names, oob bool) {
	n := b.dirty
	if skip != b.prepSkip || names != b.prepNames || oob != b.prepOOB {
		n = batchSize
		b.prepSkip, b.prepNames, b.prepOOB = skip, names, oob
	}
	b.dirty = 0
	for i := range n {
		buf := b.buf(i)[skip:]
		b.iov[i].Base = &buf[0]
		b.iov[i].SetLen(len(buf))
		h := &b.hs[i]
		h.Len = 0
		h.Hdr = unix.Msghdr{}
		h.Hdr.Iov = &b.iov[i]
		h.Hdr.SetIovlen(1)
		if names {
			h.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
		}
		if oob {
			h.Hdr.Control = &b.oob[i][0]
			h.Hdr.SetControllen(oobSize)
		}
	}
}

// setPayload points message i at p, with no address and no control data
// (a send on a connected socket).
func (b *batch) setPayload(i int, p []byte) {
	b.iov[i].Base = unsafe.SliceData(p)
	b.iov[i].SetLen(len(p))
	h := &b.hs[i]
	h.Hdr.Name, h.Hdr.Namelen = nil, 0
	h.Hdr.Control = nil
	h.Hdr.SetControllen(0)
	h.Hdr.Iov = &b.iov[i]
	h.Hdr.SetIovlen(1)
}

func ntohs(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }

func htons(p *uint16, v uint16) { binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(p))[:], v) }

// sockaddrToAddrPort decodes a received sender address; IPv4-mapped
// addresses come back as IPv4.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(&sa.Port))
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), ntohs(&sa4.Port))
	}
	return netip.AddrPort{}
}

// putSockaddr encodes ap for a socket of the given family into sa and
// returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v6 bool) uint32 {
	*sa = unix.RawSockaddrInet6{}
	if v6 {
		sa.Family = unix.AF_INET6
		htons(&sa.Port, ap.Port())
		sa.Addr = ap.Addr().As16()
		return unix.SizeofSockaddrInet6
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	sa4.Family = unix.AF_INET
	htons(&sa4.Port, ap.Port())
	sa4.Addr = ap.Addr().Unmap().As4()
	return unix.SizeofSockaddrInet4
}

// pktinfoDst returns the destination address of a received datagram from
// its IP_PKTINFO / IPV6_PKTINFO control message.
func pktinfoDst(oob []byte) netip.Addr {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return netip.Addr{}
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom4(pi.Addr)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(pi.Addr).Unmap()
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}

// putPktinfoSrc writes a control message that makes a send leave from src
// into b and returns its length: the reply then comes from the address the
// client sent to, even on a socket bound to a wildcard address.
func putPktinfoSrc(b []byte, src netip.Addr, v6 bool) int {
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	data := b[unix.CmsgLen(0):]
	if v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
		pi.Addr = src.As16()
		return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
	pi.Spec_dst = src.Unmap().As4()
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}

// setPktinfo asks the kernel for the destination address of every
// received datagram (for sockets bound to a wildcard address).
func setPktinfo(fd uintptr, v6 bool) error {
	if v6 {
		return unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}
	return unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
}

// setDest addresses message i to name (an unconnected send), leaving from
// the source in oob if oob is not empty.
func (b *batch) setDest(i int, name *unix.RawSockaddrInet6, namelen uint32, oob []byte) {
	h := &b.hs[i]
	h.Hdr.Name = (*byte)(unsafe.Pointer(name))
	h.Hdr.Namelen = namelen
	if len(oob) > 0 {
		h.Hdr.Control = &oob[0]
		h.Hdr.SetControllen(len(oob))
	}
}
