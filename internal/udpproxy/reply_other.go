//go:build (unix && !linux) || portable

package udpproxy

import (
	"syscall"
	"time"
)

// replier relays the origins' replies of the sessions of one listener.
// This is the portable fallback of reply_linux.go (which keeps every
// origin socket of a listener in one epoll set served by one goroutine):
// here each session's origin socket gets a goroutine of its own, which
// waits in the runtime netpoller, reads what arrived into a pooled batch
// (borrowed only while a read is in progress, so an idle session holds
// none) and sends the replies with collect and flush (reply.go), as the
// Linux replier does.
type replier struct {
	l *listener

	// A session's own replier (see watch) owns these.
	replyBatch
}

func newReplier(l *listener) (*replier, error) { return &replier{l: l}, nil }

// loop has nothing to do: the sessions' goroutines end when their sockets
// close.
func (r *replier) loop() { r.l.srv.readers.Done() }

func (r *replier) close() {}

// watch starts relaying ss's replies on a goroutine of ss's own, until
// its origin socket is closed.
func (r *replier) watch(ss *session) error {
	w := &replier{l: r.l}
	w.recvFn, w.sendFn = w.recv, w.send
	go w.serve(ss)
	return nil
}

// forget has nothing to drop: closing ss's socket ends its goroutine.
func (r *replier) forget(*session) {}

// serve relays the replies of ss until its socket is closed.
func (r *replier) serve(ss *session) {
	srv := r.l.srv
	for {
		err := ss.rc.Read(r.recvFn)
		switch {
		case err != nil: // closed: the session ended
		case r.rerr != 0:
			ss.originFailed(r.rerr)
		case !srv.closing.Load():
			r.now = time.Now().UnixNano()
			r.collect(ss, 0, r.rn)
			r.fill = r.rn
			r.flush()
		}
		if r.b != nil {
			srv.pool.put(r.b)
			r.b = nil
		}
		if err != nil {
			return
		}
	}
}

// recv reads what is queued on the origin socket, taking a batch for the
// read only; with nothing queued it gives the batch back and waits.
func (r *replier) recv(fd uintptr) bool {
	if r.b == nil {
		r.b = r.l.srv.pool.get()
		r.b.prepareRecv(0, false, false)
		r.fill, r.m = 0, 0
	}
	r.rn, r.rerr = recvmmsg(fd, r.b.hs[:])
	if r.rerr == syscall.EAGAIN {
		r.l.srv.pool.put(r.b)
		r.b = nil
		return false
	}
	return true
}
