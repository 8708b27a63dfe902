package relay

import (
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// poller parks idle directions without a goroutine: the source socket of
// a direction waiting for data is armed in one epoll set (EPOLLONESHOT),
// and one goroutine for the whole process waits on that set and starts a
// goroutine for a direction only when its socket becomes readable.
//
// The sockets stay registered in the runtime's own netpoller too (it uses
// edge-triggered events and nobody waits there while a direction is
// parked, so that costs a wake-up of the runtime and nothing else).
type poller struct {
	epfd  int
	mu    sync.Mutex
	slots []*half // by token
	free  []int32
	gen   int32
}

var thePoller struct {
	once sync.Once
	p    *poller
}

// getPoller returns the process poller, starting it on first use; nil if
// epoll is unavailable (directions then wait in the runtime netpoller).
func getPoller() *poller {
	thePoller.once.Do(func() {
		if os.Getenv("PRISM_RELAY_POLLER") == "off" {
			return // waits happen in the runtime netpoller (a goroutine per waiting direction)
		}
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			slog.Warn("relay: no epoll, idle connections keep a goroutine", "err", err)
			return
		}
		thePoller.p = &poller{epfd: fd}
		go thePoller.p.loop()
	})
	return thePoller.p
}

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// arm registers h (first time) or re-arms it. If the socket is readable
// already, the event fires at once. Only h's owner calls it.
func (p *poller) arm(h *half) error {
	if !h.registered {
		p.mu.Lock()
		var tok int32
		if n := len(p.free); n > 0 {
			tok = p.free[n-1]
			p.free = p.free[:n-1]
		} else {
			tok = int32(len(p.slots))
			p.slots = append(p.slots, nil)
		}
		p.gen++
		h.token, h.gen = tok, p.gen
		p.slots[tok] = h
		p.mu.Unlock()
		h.registered = true
		ev := unix.EpollEvent{Events: armEvents, Fd: h.token, Pad: h.gen}
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, h.srcFD, &ev); err != nil {
			h.registered = false
			p.release(h)
			return err
		}
		return nil
	}
	ev := unix.EpollEvent{Events: armEvents, Fd: h.token, Pad: h.gen}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, h.srcFD, &ev)
}

// unregister removes h's socket from the set; it must run before the
// socket is closed.
func (p *poller) unregister(h *half) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, h.srcFD, nil)
	h.registered = false
	p.release(h)
}

func (p *poller) release(h *half) {
	p.mu.Lock()
	if p.slots[h.token] == h {
		p.slots[h.token] = nil
		p.free = append(p.free, h.token)
	}
	p.mu.Unlock()
}

func (p *poller) loop() {
	var events [128]unix.EpollEvent
	for {
		n, err := unix.EpollWait(p.epfd, events[:], -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			slog.Error("relay: epoll_wait failed; parked connections stall", "err", err)
			return
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			p.mu.Lock()
			var h *half
			if int(ev.Fd) < len(p.slots) {
				h = p.slots[ev.Fd]
			}
			if h != nil && h.gen != ev.Pad {
				h = nil // the token was reused by another direction
			}
			p.mu.Unlock()
			if h != nil {
				h.wake()
			}
		}
	}
}
