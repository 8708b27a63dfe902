//go:build unix

package udpproxy

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/spp"
)

// What a replier does with the replies it read, on every platform: queue
// them for their clients (collect) and send them on the listener socket
// (flush, send). How it learns that an origin socket has replies is the
// platform's (reply_linux.go: one epoll set per listener; reply_other.go:
// a goroutine per session).

// replyBatch is a replier's batch of origin replies and the state of the
// system calls that fill and send it, the same on every platform.
type replyBatch struct {
	b        *batch
	fill     int // slots of b holding received datagrams
	m        int // replies queued for sending, compacted into b.hs[:m]
	now      int64
	recvFn   func(fd uintptr) bool
	sendFn   func(fd uintptr) bool
	rn       int
	rerr     syscall.Errno
	sendN    int
	sendDrop int
}

// collect queues messages [from, from+n) of the batch, replies of ss, for
// the client, dropping (and counting) truncated ones and, in simple mode,
// ones without a valid SPP header naming ss's client.
func (r *replier) collect(ss *session, from, n int) {
	srv := r.l.srv
	b := r.b
	srv.c.originDgrams.Add(int64(n))
	simple := srv.app.ProxyProtocol == ProxySimple
	limit := srv.app.UDP.MaxDatagramSize
	if simple {
		limit += spp.HeaderLen
	}
	m0 := r.m
	var bytes int64
	for i := from; i < from+n; i++ {
		h := &b.hs[i]
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 || int(h.Len) > limit {
			srv.c.truncated.Add(1)
			continue
		}
		data := b.buf(i)[:h.Len]
		if simple {
			c, _, p, err := spp.Parse(data)
			if err != nil || c != ss.client {
				srv.c.badSPP.Add(1)
				continue
			}
			data = p
		}
		bytes += int64(len(data))
		b.setPayload(i, data)
		b.setDest(i, &ss.name, ss.namelen, ss.oob[:ss.ooblen])
		if r.m != i {
			b.hs[r.m] = *h
		}
		r.m++
	}
	if r.m > m0 {
		ss.last.Store(r.now)
		ss.live.OriginBytes.Add(bytes)
	}
}

// flush sends the queued replies on the listener socket, from the address
// each client sent to, and readies the batch for more reads.
func (r *replier) flush() {
	if r.m > 0 {
		r.sendN, r.sendDrop = 0, 0
		if err := r.l.rc.Write(r.sendFn); err != nil { // listener closed
			r.sendDrop += r.m - r.sendN
		}
		if r.sendDrop > 0 {
			r.l.srv.c.sendClient.Add(int64(r.sendDrop))
		}
	}
	r.b.dirty = max(r.b.dirty, r.fill)
	r.b.prepareRecv(0, false, false)
	r.fill, r.m = 0, 0
}

// send writes the queued replies; a full send buffer parks the replier
// (every session's replies leave through this one socket anyway).
func (r *replier) send(fd uintptr) bool {
	for r.sendN < r.m {
		n, e := sendmmsg(fd, r.b.hs[r.sendN:r.m])
		if e == unix.EAGAIN {
			return false
		}
		if e == errRestartSys {
			// Not about this message: the pending error a receive on the
			// socket interrupted by a signal left (a process sharing the
			// socket that reads it in blocking mode), returned by this
			// send instead of sending. Send it again.
			continue
		}
		if e != 0 {
			r.sendDrop++
			r.sendN++ // skip the message the kernel refused
			continue
		}
		r.sendN += n
	}
	return true
}
