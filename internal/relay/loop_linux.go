//go:build !portable

package relay

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/event"
)

// The loop path, for a relay between two kernel stream sockets (TCP or
// unix), the common case: in the spirit of HAProxy's and nginx's event
// loops, the relay owns both sockets as raw descriptors (New duplicates
// them and closes the net.Conns, so the runtime's netpoller forgets them)
// and one event loop per core, on an edge-triggered epoll set, reads and
// writes them when they are ready: no goroutine, pipe or buffer per
// connection, a small message costs one recv(2) and one send(2) on the
// loop's goroutine, and one wake-up of the loop serves every socket that
// became ready meanwhile. Bytes move the same ways as on the goroutine
// path (Mode: small messages through a pooled 16 KiB buffer, bulk spliced
// through a pooled pipe, ModeCopy through 64 KiB).
//
// The loop waits in the runtime netpoller on its epoll descriptor (an
// epoll set is readable while it has events), within one RawConn.Read
// call for as long as events keep coming, so that a readiness edge that
// came while the loop was busy is never lost, and collects the events with
// a non-blocking epoll_wait. A thread blocked in epoll_wait would hold a P
// in a system call: the runtime's sysmon would keep taking that P back
// (handing it off costs thread wake-ups) and, with one CPU, poll every
// 20 µs instead of backing off; that alone was about 15 % of the proxy's
// CPU under short-connection load. A read deadline on that
// descriptor wakes it for the first idle deadline of its relays (a heap,
// instead of a runtime timer per relay) and once a second to set TCP
// keepalive on connections that have lived that long (Options.KeepAlive).
//
// The same loops park the idle directions of the goroutine path (TLS and
// wrapped conns, half.go): such a direction's source socket is armed
// (EPOLLONESHOT), and its readiness starts a goroutine for it again.
//
// A direction's state belongs to the loop goroutine. Another goroutine
// that ends a relay (Stop) records the cause and shuts both sockets down
// (under the Relay's mutex, never after the loop closed them); the
// shutdown wakes the loop, which completes the relay. Idle timeouts
// expire on the loop itself.

// sweepEvery is how often a loop wakes without events, to set TCP
// keepalive on the connections that lived that long.
const sweepEvery = time.Second

// entry is what a slot holds: a relay on the loop path (*fdConn) or a
// parked direction of the goroutine path (*half). ready takes an event
// of one of its sockets (side: 0 client, 1 origin) on the loop goroutine.
type entry interface {
	ready(side int32, events uint32)
}

// slot is one entry and its generation: an event carries both, so that
// one for a freed slot, or a slot reused since, is dropped.
type slot struct {
	e   entry
	gen int32
}

// evloop is one event loop: an epoll set, what is registered in it by
// slot, and the goroutine that serves them.
type evloop struct {
	epfd int
	file *os.File // epfd, for waiting in the runtime netpoller
	rc   syscall.RawConn

	mu    sync.Mutex
	slots []slot // by the slot number in each event's data
	free  []int32
	gen   int32
	// ka holds the relays started with Options.KeepAlive since the last
	// sweep, kaOld those started before it: the next sweep sets theirs.
	// A relay that ends first is cleared from its list (fdConn.kaIdx):
	// the lists used to keep every relay of the last one to two
	// sweep intervals reachable after it ended, 15,000 sessions and
	// 16 MB of live heap at 10,000 short connections a second, which
	// every GC cycle marked again.
	ka, kaOld []*fdConn
	idle      idleHeap // relays with an IdleTimeout, by deadline
	// wakeAt is the deadline set on file (UnixNano): the next sweep or
	// the first idle deadline, whichever is first.
	wakeAt int64

	// Owned by the loop goroutine.
	events [128]unix.EpollEvent
	now    int64     // UnixNano at the last wake-up
	busy   []*fdConn // relays whose budget ran out (see pumpBudget)
	spare  []*fdConn
	werr   error // epoll_wait failed
	waitFn func(uintptr) bool
}

var theLoops struct {
	once sync.Once
	ls   []*evloop
}

// getLoop returns the loop for socket descriptor fd, starting one loop
// per usable core on first use; nil if epoll is unavailable or the
// environment turns it off (PRISM_RELAY_POLLER=off: every relay then
// takes the goroutine path and waits in the runtime netpoller, and no
// direction parks).
func getLoop(fd int) *evloop {
	theLoops.once.Do(func() {
		if os.Getenv("PRISM_RELAY_POLLER") == "off" {
			return
		}
		for range max(runtime.GOMAXPROCS(0), 1) {
			l, err := newLoop()
			if err != nil {
				slog.Warn("relay: no event loop, relays take the goroutine path", "err", err)
				break
			}
			theLoops.ls = append(theLoops.ls, l)
			go l.run()
		}
	})
	if n := len(theLoops.ls); n > 0 {
		return theLoops.ls[uint(fd)%uint(n)]
	}
	return nil
}

func newLoop() (*evloop, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil { // so that os.NewFile registers it with the runtime poller
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	l := &evloop{epfd: fd, file: os.NewFile(uintptr(fd), "relay-loop")}
	if l.rc, err = l.file.SyscallConn(); err != nil {
		l.file.Close()
		return nil, fmt.Errorf("epoll set not pollable: %w", err)
	}
	l.waitFn = l.serve
	return l, nil
}

func (l *evloop) run() {
	tick := time.Now().UnixNano() + int64(sweepEvery)
	for {
		l.mu.Lock()
		l.setWake(tick)
		l.mu.Unlock()
		err := l.rc.Read(l.waitFn) // returns only on the deadline or a failure
		switch {
		case l.werr != nil:
			slog.Error("relay: epoll_wait failed; relays on this loop stall", "err", l.werr)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now().UnixNano()
			l.now = now
			l.expire(now)
			if now >= tick {
				l.sweep()
				tick = now + int64(sweepEvery)
			}
		case err != nil:
			slog.Error("relay: waiting on the epoll set failed; relays on this loop stall", "err", err)
			return
		}
	}
}

// setWake sets the loop's deadline to the earlier of tick and the first
// idle deadline (l.mu held, so that add and run never undo each other's).
func (l *evloop) setWake(tick int64) {
	at := tick
	if len(l.idle) > 0 && l.idle[0].idleAt < at {
		at = l.idle[0].idleAt
	}
	l.wakeAt = at
	_ = l.file.SetReadDeadline(time.Unix(0, at))
}

// expire ends the relays whose idle timeout passed by now; one that moved
// bytes meanwhile (read them, or had the kernel deliver what it wrote
// earlier: kernelDeadline) goes back into the heap with its new deadline.
func (l *evloop) expire(now int64) {
	for {
		l.mu.Lock()
		if len(l.idle) == 0 || l.idle[0].idleAt > now {
			l.mu.Unlock()
			return
		}
		c := heap.Pop(&l.idle).(*fdConn)
		l.mu.Unlock()
		if c.done {
			continue
		}
		d := c.r.opts.IdleTimeout
		next := c.r.last.Load() + int64(d)
		if next <= now {
			if q, ok := c.kernelQuiet(); ok {
				next = max(next, kernelDeadline(now, d, q))
			}
		}
		if next > now {
			l.mu.Lock()
			c.idleAt = next
			heap.Push(&l.idle, c)
			l.mu.Unlock()
			continue
		}
		c.r.setCause(idleCause)
		c.complete()
	}
}

// serve is the RawConn.Read callback: it handles every ready event and
// returns false to wait for the next edge within the same Read call.
func (l *evloop) serve(uintptr) bool {
	for {
		n, err := epollWaitNow(l.epfd, l.events[:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			l.werr = err
			return true
		case n == 0 && len(l.busy) == 0:
			return false
		}
		l.now = time.Now().UnixNano()
		if len(l.busy) > 0 {
			busy := l.busy
			l.busy = l.spare[:0]
			for _, c := range busy {
				c.queued = false
				c.step()
			}
			clear(busy)
			l.spare = busy
		}
		for i := range n {
			ev := &l.events[i]
			sn, side := ev.Fd>>1, ev.Fd&1
			l.mu.Lock()
			var e entry
			if int(sn) < len(l.slots) && l.slots[sn].gen == ev.Pad {
				e = l.slots[sn].e // else freed, or reused by another
			}
			l.mu.Unlock()
			if e != nil {
				e.ready(side, ev.Events)
			}
		}
		if n < len(l.events) && len(l.busy) == 0 {
			return false
		}
	}
}

// later queues c for another turn (its budget ran out with bytes still
// to move; no edge will say so).
func (l *evloop) later(c *fdConn) {
	if !c.queued {
		c.queued = true
		l.busy = append(l.busy, c)
	}
}

// sweep sets TCP keepalive on the relays started with it that lived
// through a whole sweep interval (Options.KeepAlive: only a connection
// that stays open for a while needs it; a short one saves the system
// calls): those started before the previous sweep.
func (l *evloop) sweep() {
	l.mu.Lock()
	ka := l.kaOld
	l.kaOld, l.ka = l.ka, nil
	for _, c := range ka {
		if c != nil {
			c.kaIdx = -1
		}
	}
	l.mu.Unlock()
	for _, c := range ka {
		if c == nil {
			continue // ended before the sweep
		}
		c.r.mu.Lock()
		if !c.closed {
			for i := range 2 {
				if c.tcp[i] {
					setKeepAlive(int(c.fd[i]), c.r.opts.KeepAlive)
				}
			}
		}
		c.r.mu.Unlock()
	}
}

// idleHeap orders the relays that have an idle timeout by their next
// deadline (fdConn.idleAt; fdConn.hidx is the position), so that the loop
// wakes for the first one: one entry per relay instead of a runtime timer.
type idleHeap []*fdConn

func (h idleHeap) Len() int           { return len(h) }
func (h idleHeap) Less(i, j int) bool { return h[i].idleAt < h[j].idleAt }
func (h idleHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = int32(i), int32(j)
}
func (h *idleHeap) Push(x any) {
	c := x.(*fdConn)
	c.hidx = int32(len(*h))
	*h = append(*h, c)
}
func (h *idleHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.hidx = -1
	return c
}

// add registers c's sockets (edge-triggered: every readiness change is
// one event) under a fresh slot.
func (l *evloop) add(c *fdConn) {
	l.mu.Lock()
	slot, gen := l.alloc(c)
	c.slot = slot
	c.kaIdx = -1
	if c.r.opts.KeepAlive.Enable && (c.tcp[0] || c.tcp[1]) {
		c.kaIdx = int32(len(l.ka))
		l.ka = append(l.ka, c)
	}
	c.hidx = -1
	if d := c.r.opts.IdleTimeout; d > 0 {
		c.idleAt = c.r.last.Load() + int64(d)
		heap.Push(&l.idle, c)
		if c.idleAt < l.wakeAt {
			l.setWake(l.wakeAt)
		}
	}
	l.mu.Unlock()
	for side := range int32(2) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET, Fd: slot<<1 | side, Pad: gen}
		if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(c.fd[side]), &ev); err != nil {
			// Cannot happen for a connected socket short of ENOMEM; end
			// the relay rather than leave a socket nobody watches.
			c.r.end(cause{status: event.StatusInternal, side: event.SideProxy, reason: event.ReasonClosed, detail: "relay: epoll_ctl: " + err.Error()})
		}
	}
}

func (l *evloop) release(c *fdConn) {
	l.mu.Lock()
	if c.hidx >= 0 {
		heap.Remove(&l.idle, int(c.hidx))
	}
	if i := int(c.kaIdx); i >= 0 {
		// At its index in one of the two lists (a sweep moved ka to kaOld).
		for _, list := range [2][]*fdConn{l.ka, l.kaOld} {
			if i < len(list) && list[i] == c {
				list[i] = nil
			}
		}
		c.kaIdx = -1
	}
	l.freeSlot(c.slot, c)
	l.mu.Unlock()
}

// alloc files e under a free slot with a new generation (l.mu held).
func (l *evloop) alloc(e entry) (n, gen int32) {
	if k := len(l.free); k > 0 {
		n = l.free[k-1]
		l.free = l.free[:k-1]
	} else {
		n = int32(len(l.slots))
		l.slots = append(l.slots, slot{})
	}
	l.gen++
	l.slots[n] = slot{e: e, gen: l.gen}
	return n, l.gen
}

// freeSlot frees slot n if e still holds it (l.mu held).
func (l *evloop) freeSlot(n int32, e entry) {
	if l.slots[n].e == e {
		l.slots[n] = slot{}
		l.free = append(l.free, n)
	}
}

// ready is an event of one of c's sockets.
func (c *fdConn) ready(side int32, events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLPRI|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.rd[side] = true
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hup[side] = true // read until EOF: no edge will follow the last bytes
	}
	if events&unix.EPOLLERR != 0 {
		c.soErr[side] = true
		if c.d[side].eof && !c.r.isEnded() {
			// The peer sent its FIN, so no direction reads this socket
			// any more and no read would report the error; the relay
			// would wait for the other peer or the idle timeout. Only
			// this event says the peer reset (or the socket failed).
			if err := peerError(int(c.fd[side])); err != nil {
				src, _ := sides(int(side))
				err, op := afterFIN(err, src, c.d[1-side].bytes != c.d[side].outAtEOF)
				c.r.record(err, src, op)
			}
		}
	}
	if events&unix.EPOLLPRI != 0 {
		c.urg[side] = true
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.wr[side] = true
	}
	c.step()
}

// Parking a direction of the goroutine path.

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// watchEvents arms a direction whose source sent its EOF (half.watch):
// the socket stays readable (EOF) for good, so only EPOLLERR and
// EPOLLHUP, which epoll always reports, may wake it.
const watchEvents = unix.EPOLLONESHOT

// arm registers h's source socket (first time) or re-arms it for events
// (armEvents, watchEvents); if the socket is ready already, the event
// fires at once. Only h's owner calls it.
func (l *evloop) arm(h *half, events uint32) error {
	if !h.registered {
		l.mu.Lock()
		h.token, h.gen = l.alloc(h)
		l.mu.Unlock()
		h.registered = true
		ev := unix.EpollEvent{Events: events, Fd: h.token << 1, Pad: h.gen}
		if err := rawEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(h.srcFD), &ev); err != nil {
			h.registered = false
			l.mu.Lock()
			l.freeSlot(h.token, h)
			l.mu.Unlock()
			return err
		}
		return nil
	}
	ev := unix.EpollEvent{Events: events, Fd: h.token << 1, Pad: h.gen}
	return rawEpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(h.srcFD), &ev)
}

// unregister removes h's socket from the set; it must run before the
// socket is closed.
func (l *evloop) unregister(h *half) {
	_ = rawEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(h.srcFD), nil)
	h.registered = false
	l.mu.Lock()
	l.freeSlot(h.token, h)
	l.mu.Unlock()
}

// ready is the readiness of a parked direction's source socket.
func (h *half) ready(int32, uint32) { h.wake() }

// fdConn is a relay on the loop path.
type fdConn struct {
	r      *Relay
	lp     *evloop
	fd     [2]int32 // client, origin
	slot   int32
	tcp    [2]bool // the socket is TCP (TCP_INFO, keepalive)
	rd, wr [2]bool // the socket may be readable / writable (from events)
	hup    [2]bool // the peer shut down writing (or the socket failed)
	soErr  [2]bool // epoll reported EPOLLERR: a socket error may wait in SO_ERROR
	urg    [2]bool // epoll reported EPOLLPRI: TCP urgent data, where reads stop short
	done   bool    // completed (loop-owned)
	queued bool    // in the loop's busy list
	hidx   int32   // position in the loop's idle heap, -1 if not in it (l.mu)
	idleAt int64   // the idle deadline it is filed under (l.mu)
	// Its index in the loop's keepalive list, ka or kaOld (l.mu); -1 once
	// a sweep took it out of both.
	kaIdx int32

	// Guarded by r.mu.
	closed      bool // the descriptors are closed (or will be, see adding)
	adding      bool // Start is registering the descriptors: closing waits
	closeOnDone bool // completed while adding: Start closes them

	prefix []byte // Options.ClientPrefix not yet written to the origin
	d      [2]fdDir
}

// fdDir is one direction on the loop path: bytes read from fd[i] are
// written to fd[1-i].
type fdDir struct {
	pipe      *pipe
	buf       *[]byte
	off       int32
	pending   int32
	bytes     int64
	rtt       int64 // last RTT sample of the source, ns
	rttAt     int64 // when it was taken, UnixNano
	lastAt    int64 // when a byte last moved, UnixNano
	spliceNow bool
	smallRun  uint8
	eof       bool // read EOF; propagate it once pending is written
	// outAtEOF is the other direction's byte count when this one read its
	// EOF: a later socket error tells by it whether the relay wrote to
	// that peer since (afterFIN).
	outAtEOF int64
	done     bool // EOF propagated
}

// takeFDs moves r onto the loop path: both sockets become descriptors of
// its own (the net.Conns are closed, which takes them out of the runtime
// netpoller; the connection stays open through the duplicates). false
// leaves r on the goroutine path (no loop, or no descriptor to spare).
func takeFDs(r *Relay, crc, orc syscall.RawConn) bool {
	var fds [2]int
	dup := func(rc syscall.RawConn) (int, error) {
		nfd, derr := -1, error(nil)
		if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
			return -1, err
		}
		return nfd, derr
	}
	var err error
	if fds[0], err = dup(crc); err != nil {
		return false
	}
	lp := getLoop(fds[0])
	if lp == nil {
		unix.Close(fds[0])
		return false
	}
	if fds[1], err = dup(orc); err != nil {
		unix.Close(fds[0])
		return false
	}
	c := &fdConn{r: r, lp: lp, fd: [2]int32{int32(fds[0]), int32(fds[1])}}
	_, c.tcp[0] = r.client.(*net.TCPConn)
	_, c.tcp[1] = r.origin.(*net.TCPConn)
	_ = r.client.Close()
	_ = r.origin.Close()
	r.client, r.origin = nil, nil // closed: an idle connection keeps no net.Conn
	r.fl = c
	return true
}

// start is Relay.Start on the loop path.
func (c *fdConn) start(now time.Time) {
	r := c.r
	ns := now.UnixNano()
	for i, d := range [2]time.Duration{r.opts.ClientRTT, r.opts.OriginRTT} {
		c.d[i].rttAt, c.d[i].lastAt = ns, ns
		if d > 0 {
			c.d[i].rtt = int64(d)
		} else {
			c.sampleRTT(i, ns)
		}
		c.publishRTT(i)
	}
	if p := r.opts.ClientPrefix; len(p) > 0 {
		c.prefix = p
		c.d[0].bytes = int64(len(p))
		if l := r.opts.Live; l != nil {
			l.ClientBytes.Add(int64(len(p)))
		}
		r.opts.ClientPrefix = nil
	}
	c.wr = [2]bool{true, true} // connected sockets take data until a write says EAGAIN
	r.mu.Lock()
	c.adding = true
	r.mu.Unlock()
	c.lp.add(c)
	r.mu.Lock()
	c.adding = false
	if c.closeOnDone {
		c.closeFDs()
	}
	r.mu.Unlock()
}

// kick wakes the loop for a relay that ended off the loop (Stop, idle
// timeout): shutting both sockets down makes them readable.
func (c *fdConn) kick() {
	c.r.mu.Lock()
	if !c.closed {
		_ = rawShutdown(int(c.fd[0]), unix.SHUT_RDWR)
		_ = rawShutdown(int(c.fd[1]), unix.SHUT_RDWR)
	}
	c.r.mu.Unlock()
}

// closeFDs closes both descriptors (r.mu held); closing also takes them
// out of the epoll set.
func (c *fdConn) closeFDs() {
	_ = rawClose(int(c.fd[0]))
	_ = rawClose(int(c.fd[1]))
}

// step moves both directions as far as the sockets allow, and completes
// the relay once both are done or it ended.
func (c *fdConn) step() {
	if c.done {
		return
	}
	for i := range 2 {
		if c.r.isEnded() {
			break
		}
		if !c.d[i].done {
			c.pump(i)
		}
	}
	if (c.d[0].done && c.d[1].done) || c.r.isEnded() {
		c.complete()
	}
}

// sides of direction i: it reads side i and writes side 1-i.
func sides(i int) (src, dst event.Side) {
	if i == 0 {
		return event.SideClient, event.SideOrigin
	}
	return event.SideOrigin, event.SideClient
}

// pumpBudget bounds the chunks one direction moves per turn (up to 1
// MiB spliced), so that a bulk stream whose source never drains cannot
// hold the loop from its other connections: the loop comes back to it
// after serving the events that came meanwhile.
const pumpBudget = 16

// pump moves direction i until its source is drained, its destination is
// full, it is done, or its budget is spent.
func (c *fdConn) pump(i int) {
	d := &c.d[i]
	src, dst := int(c.fd[i]), int(c.fd[1-i])
	srcSide, dstSide := sides(i)
	for budget := pumpBudget; ; budget-- {
		if budget == 0 {
			c.lp.later(c)
			return
		}
		if d.pending > 0 || (i == 0 && len(c.prefix) > 0) {
			if !c.wr[1-i] {
				return
			}
			full, err := c.flush(d, i, dst)
			if err != nil {
				c.r.record(err, dstSide, dstSide.String()+" write")
				return
			}
			if full {
				c.wr[1-i] = false
				return
			}
		}
		if d.eof {
			d.done = true
			c.drop(d)
			c.r.finished(srcSide)
			if c.d[1-i].done {
				// The other way read its EOF already: the relay completes
				// now, and closing dst sends its FIN (nothing is left
				// unread in it), without a shutdown(2) first.
				return
			}
			if err := rawShutdown(dst, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
				c.r.record(err, dstSide, "shutdown "+dstSide.String())
			}
			return
		}
		if !c.rd[i] {
			return
		}
		if d.spliceNow && c.lp.now-d.lastAt > int64(quietAfter) && c.r.opts.Mode == ModeAuto {
			d.spliceNow, d.smallRun = false, 0 // quiet for a while: start small again
		}
		n, err := c.fill(d, src, c.urg[i])
		switch {
		case err == unix.EAGAIN:
			c.rd[i] = false
			c.drop(d)
			return
		case err != nil:
			c.r.record(err, srcSide, srcSide.String()+" read")
			return
		case n == 0:
			// An abort (keepalive or user timeout) reads as EOF once the
			// kernel shut the socket down, the error waiting in SO_ERROR;
			// epoll says EPOLLERR then, so a clean FIN costs no getsockopt.
			if c.soErr[i] {
				if err := peerError(src); err != nil {
					err, op := afterFIN(err, srcSide, false)
					c.r.record(err, srcSide, op)
					return
				}
			}
			c.drop(d)
			d.eof, d.outAtEOF = true, c.d[1-i].bytes
			continue
		}
		c.count(i, int64(n))
		d.pending = int32(n)
		if d.pipe == nil && n < len(*d.buf) && !c.urg[i] {
			// A short read drained the socket (stream reads return short
			// only then, but at TCP's urgent mark: after EPOLLPRI the
			// direction reads on until EAGAIN): the next edge says when
			// there is more. After the peer's FIN no edge would follow;
			// but the FIN came before this read (epoll said so), behind
			// every byte the peer sent, so it is all that is left: an
			// EOF, without a recv(2) that returns 0 to say so. Not after
			// an error (EPOLLERR): reading on says which.
			switch {
			case !c.hup[i]:
				c.rd[i] = false
			case !c.soErr[i]:
				d.eof, d.outAtEOF = true, c.d[1-i].bytes
			}
		}
		c.adapt(d, n)
	}
}

// fill reads what src has queued into the direction's pipe or buffer
// (nothing is pending: both are empty). Which one holds the chunk is what
// flush goes by, so a direction that changed its way gives the other one
// back first.
//
// urg (EPOLLPRI came: TCP urgent data) makes it recv(2) even where it
// would splice: splice stops at the urgent mark for good, saying EAGAIN
// there (0, an early EOF, once the FIN is in) with no edge to follow, so
// the bytes after the mark were never forwarded. recv steps over it (the
// urgent byte itself is out of band). The direction stays on recv: urgent
// data is rare (telnet, rlogin) and another mark may follow.
func (c *fdConn) fill(d *fdDir, src int, urg bool) (int, error) {
	for {
		var n int
		var err error
		if (d.spliceNow || c.r.opts.Mode == ModeSplice) && !urg {
			if d.buf != nil {
				c.drop(d) // back to splice: the buffer is empty
			}
			if d.pipe == nil {
				if d.pipe, err = getPipe(); err != nil {
					return 0, err
				}
			}
			var n64 int64
			n64, err = unix.Splice(src, nil, d.pipe.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			n = int(n64)
		} else {
			if d.pipe != nil {
				putPipe(d.pipe, true) // back from splice: the pipe is empty
				d.pipe = nil
			}
			if d.buf == nil {
				bufsInUse.Add(1)
				if c.r.opts.Mode == ModeCopy {
					d.buf = copyBufs.Get().(*[]byte)
				} else {
					d.buf = smallBufs.Get().(*[]byte)
				}
			}
			n, err = rawRecv(src, *d.buf)
			d.off = 0
		}
		if err == unix.EINTR {
			continue
		}
		return n, err
	}
}

// flush writes direction i's pending bytes (the client prefix first) to
// dst; full reports a full socket buffer.
func (c *fdConn) flush(d *fdDir, i, dst int) (full bool, err error) {
	// The prefix belongs to direction 0 alone: the other direction's
	// flush must not touch it, or the rest of a prefix the origin could
	// not take yet is lost (and was counted as sent).
	if i == 0 && c.prefix != nil {
		for len(c.prefix) > 0 {
			n, err := rawSend(dst, c.prefix)
			switch err {
			case nil:
				c.prefix = c.prefix[n:]
			case unix.EINTR:
			case unix.EAGAIN:
				return true, nil
			default:
				return false, err
			}
		}
		c.prefix = nil // sent: an idle connection does not keep it
	}
	for d.pending > 0 {
		var n int
		var err error
		if d.pipe != nil {
			var n64 int64
			n64, err = unix.Splice(d.pipe.r, nil, dst, nil, int(d.pending), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			n = int(n64)
		} else {
			n, err = rawSend(dst, (*d.buf)[d.off:d.off+d.pending])
			d.off += int32(n)
		}
		switch err {
		case nil:
			d.pending -= int32(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return true, nil
		default:
			return false, err
		}
	}
	if d.buf != nil && !c.rd[i] {
		c.drop(d) // nothing more to read for now: hold no buffer while waiting
	}
	return false, nil
}

// drop gives back the direction's pipe or buffer once it is empty.
func (c *fdConn) drop(d *fdDir) {
	if d.pending != 0 {
		return
	}
	if d.pipe != nil {
		putPipe(d.pipe, true)
		d.pipe = nil
	}
	if d.buf != nil {
		bufsInUse.Add(-1)
		if len(*d.buf) == copyBufSize {
			copyBufs.Put(d.buf)
		} else {
			smallBufs.Put(d.buf)
		}
		d.buf = nil
	}
}

// discard gives back the pipe and buffer at the end, whatever they
// hold: a pipe that still holds bytes is closed, not pooled.
func (c *fdConn) discard(d *fdDir) {
	if d.pipe != nil {
		putPipe(d.pipe, d.pending == 0)
		d.pipe = nil
	}
	d.pending = 0
	c.drop(d)
}

// adapt picks the path of the next read from the size of the last one
// (ModeAuto only), as the goroutine path does (sockets_linux.go).
func (c *fdConn) adapt(d *fdDir, n int) {
	if c.r.opts.Mode != ModeAuto {
		return
	}
	if !d.spliceNow {
		if n == smallBufSize {
			d.spliceNow, d.smallRun = true, 0
		}
		return
	}
	if n >= smallSplice {
		d.smallRun = 0
		return
	}
	if d.smallRun++; d.smallRun >= smallSplices {
		d.spliceNow, d.smallRun = false, 0
	}
}

// count records n bytes read from side i.
func (c *fdConn) count(i int, n int64) {
	d := &c.d[i]
	d.bytes += n
	if l := c.r.opts.Live; l != nil {
		if i == 0 {
			l.ClientBytes.Add(n)
		} else {
			l.OriginBytes.Add(n)
		}
	}
	now := c.lp.now
	d.lastAt = now
	c.r.last.Store(now)
	if time.Duration(now-d.rttAt) >= rttEvery {
		c.sampleRTT(i, now)
		c.publishRTT(i)
	}
}

// kernelQuiet is how long the kernel has moved no bytes on either TCP leg
// of c (the shorter of the two fdQuiet); ok is false when neither leg is
// TCP. Only the loop calls it, while c is not done: the descriptors are
// open.
func (c *fdConn) kernelQuiet() (q time.Duration, ok bool) {
	for i := range 2 {
		if !c.tcp[i] {
			continue
		}
		if v, vok := fdQuiet(int(c.fd[i])); vok && (!ok || v < q) {
			q, ok = v, true
		}
	}
	return q, ok
}

// sampleRTT reads the smoothed RTT of side i from TCP_INFO.
func (c *fdConn) sampleRTT(i int, now int64) {
	c.d[i].rttAt = now
	if c.tcp[i] {
		if v := fdRTT(int(c.fd[i])); v > 0 {
			c.d[i].rtt = int64(v)
		}
	}
}

func (c *fdConn) publishRTT(i int) {
	if l := c.r.opts.Live; l != nil && c.d[i].rtt > 0 {
		if i == 0 {
			l.ClientRTT.Store(c.d[i].rtt)
		} else {
			l.OriginRTT.Store(c.d[i].rtt)
		}
	}
}

// complete ends the relay on the loop: the Result, then the descriptors
// closed and the callback.
func (c *fdConn) complete() {
	c.done = true
	r := c.r
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.ended.Store(true)
	cs := r.cause
	r.mu.Unlock()
	now := time.Now().UnixNano()
	for i := range 2 {
		if time.Duration(now-c.d[i].rttAt) >= rttEvery || c.d[i].rtt == 0 {
			c.sampleRTT(i, now)
		}
		c.discard(&c.d[i]) // unwritten bytes die with the connection
	}
	res := Result{ClientBytes: c.d[0].bytes, OriginBytes: c.d[1].bytes, ClientRTT: time.Duration(c.d[0].rtt), OriginRTT: time.Duration(c.d[1].rtt)}
	c.lp.release(c)
	r.mu.Lock()
	c.closed = true
	if c.adding {
		c.closeOnDone = true
	} else {
		c.closeFDs()
	}
	r.mu.Unlock()
	r.finishResult(&res, cs)
	r.onDone(res)
}

// setKeepAlive is net.TCPConn.SetKeepAliveConfig on a raw descriptor:
// zero fields take Go's defaults (15 s idle, 15 s interval, 9 probes),
// negative ones leave the system's.
func setKeepAlive(fd int, ka net.KeepAliveConfig) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1) != nil {
		return
	}
	secs := func(d, def time.Duration) int {
		if d == 0 {
			d = def
		}
		return int((d + time.Second - 1) / time.Second)
	}
	if ka.Idle >= 0 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(ka.Idle, 15*time.Second))
	}
	if ka.Interval >= 0 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(ka.Interval, 15*time.Second))
	}
	if ka.Count >= 0 {
		n := ka.Count
		if n == 0 {
			n = 9
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, n)
	}
}
