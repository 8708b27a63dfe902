//go:build !portable

package udpproxy

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// replier relays the origins' replies of every session of one listener
// with one goroutine.
//
// Each session's connected origin socket is registered, edge-triggered, in
// an epoll set owned by the replier; the epoll descriptor itself is
// registered in the Go runtime's netpoller (through an os.File), so the
// replier goroutine parks there like any socket reader and wakes when any
// session has a reply. A wake-up reads every ready session socket once
// (recvmmsg) into one shared batch and sends all the replies to their
// clients in one sendmmsg on the listener socket.
//
// Compared with a goroutine per session this saves, per wake-up, a
// goroutine switch per ready session, the trailing recvmmsg that only
// returns EAGAIN (with edge-triggered readiness a short read means the
// socket was empty), and a sendmmsg per session; it also saves a goroutine
// stack per idle session.
//
// Origin sockets are still net.UDPConns: reads go through their RawConn, so
// a session closed concurrently (idle expiry, shutdown, an origin error
// seen by the listener) is never read after its descriptor is released,
// and closing a socket removes it from the epoll set.
type replier struct {
	l  *listener
	ep *os.File
	rc syscall.RawConn

	mu   sync.Mutex
	byFD []*session // registered sessions by origin socket descriptor

	// Owned by the loop goroutine.
	events [batchSize]unix.EpollEvent
	ready  []*session
	again  []*session // sessions whose last read filled the batch: read again, in turn
	replyBatch
	readyFn  func(fd uintptr) bool
	waitErrs int
}

func newReplier(l *listener) (*replier, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll for udp replies: %w", err)
	}
	// Non-blocking, so os.NewFile registers it with the runtime poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll for udp replies: %w", err)
	}
	r := &replier{l: l, ep: os.NewFile(uintptr(fd), "udp-replies")}
	if r.rc, err = r.ep.SyscallConn(); err != nil {
		r.ep.Close()
		return nil, fmt.Errorf("epoll for udp replies: %w", err)
	}
	r.readyFn, r.recvFn, r.sendFn = r.readable, r.recv, r.send
	return r, nil
}

// loop relays replies until the epoll file is closed (Shutdown).
func (r *replier) loop() {
	defer r.l.srv.readers.Done()
	_ = r.rc.Read(r.readyFn) // readyFn never finishes the read: it returns on close only
}

func (r *replier) close() { _ = r.ep.Close() }

// watch registers ss's origin socket. The caller holds ss.mu, so the
// socket cannot be closed meanwhile. Datagrams that arrived before are
// reported at once (epoll reports a socket that is readable when added).
func (r *replier) watch(ss *session) error {
	var err error
	cerr := ss.rc.Control(func(sfd uintptr) {
		fd := int(sfd)
		r.mu.Lock()
		if fd >= len(r.byFD) {
			r.byFD = append(r.byFD, make([]*session, fd+1-len(r.byFD))...)
		}
		r.byFD[fd] = ss
		r.mu.Unlock()
		ss.fd = int32(fd)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if e := r.rc.Control(func(ep uintptr) { err = unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, fd, &ev) }); e != nil {
			err = e
		}
		if err != nil {
			r.forget(ss)
		}
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("watch origin socket: %w", err)
	}
	return nil
}

// forget drops ss from the table; closing its socket removes it from the
// epoll set. A wake-up that looked ss up just before reads through its
// RawConn, which fails once the socket is closed.
func (r *replier) forget(ss *session) {
	r.mu.Lock()
	if fd := int(ss.fd); fd >= 0 && fd < len(r.byFD) && r.byFD[fd] == ss {
		r.byFD[fd] = nil
	}
	r.mu.Unlock()
}

// readable runs when the epoll set has events. It always returns false:
// the runtime then waits for the next event without resetting readiness,
// so an event that arrived while replies were being relayed is not lost.
func (r *replier) readable(ep uintptr) bool {
	for {
		n, err := epollPoll(ep, r.events[:])
		if err != 0 {
			if r.waitErrs++; r.waitErrs == 1 {
				r.l.srv.log.Error("udp replies: epoll_wait failed", "addr", r.l.local.String(), "err", err)
			}
			return false
		}
		r.mu.Lock()
		for i := range n {
			if fd := int(r.events[i].Fd); fd < len(r.byFD) {
				if ss := r.byFD[fd]; ss != nil {
					r.ready = append(r.ready, ss)
				}
			}
		}
		r.mu.Unlock()
		if n < len(r.events) {
			break
		}
	}
	if len(r.ready) > 0 {
		r.drain()
	}
	return false
}

// drain reads every ready session socket until a read comes back short
// (edge-triggered: the socket was empty then), sending the replies to the
// clients whenever the batch is full and once at the end. Sessions are
// read in turn, one read each per round, so one flooding origin cannot
// starve the others; under a sustained flood the goroutine yields after
// every few full batches so the listener keeps forwarding too.
func (r *replier) drain() {
	srv := r.l.srv
	r.b = srv.pool.get()
	r.b.prepareRecv(0, false, false)
	r.fill, r.m = 0, 0
	r.now = time.Now().UnixNano()
	flushes := 0
	for len(r.ready) > 0 && !srv.closing.Load() { // Shutdown waits for this call to return
		for _, ss := range r.ready {
			if r.fill == batchSize {
				r.flush()
				if flushes++; flushes%4 == 0 {
					runtime.Gosched()
					r.now = time.Now().UnixNano()
				}
			}
			want := batchSize - r.fill
			if err := ss.rc.Read(r.recvFn); err != nil {
				continue // closed: the session ended
			}
			if r.rerr == unix.EAGAIN {
				continue
			}
			if r.rerr != 0 {
				ss.originFailed(r.rerr)
				continue
			}
			r.collect(ss, r.fill, r.rn)
			r.fill += r.rn
			if r.rn == want {
				r.again = append(r.again, ss)
			}
		}
		clear(r.ready)
		r.ready, r.again = r.again, r.ready[:0]
	}
	r.flush()
	clear(r.ready)
	r.ready = r.ready[:0]
	srv.pool.put(r.b)
	r.b = nil
}

// recv reads once; it never waits in the runtime poller (the epoll set
// reports the next datagram).
func (r *replier) recv(fd uintptr) bool {
	r.rn, r.rerr = recvmmsg(fd, r.b.hs[r.fill:])
	return true
}
