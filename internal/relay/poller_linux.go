//go:build !portable

package relay

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller parks idle directions without a goroutine: the source socket of
// a direction waiting for data is armed in an epoll set (EPOLLONESHOT),
// and one goroutine per set waits on it and starts a goroutine for a
// direction only when its socket becomes readable. There is one set per
// usable core (GOMAXPROCS at first use), a direction's set chosen by its
// socket's descriptor, so that waking parked connections is spread over
// the cores instead of queuing behind one goroutine and one lock.
//
// The sockets stay registered in the runtime's own netpoller too (it uses
// edge-triggered events and nobody waits there while a direction is
// parked, so that costs a wake-up of the runtime and nothing else).
//
// The loop does not block in epoll_wait: the epoll descriptor is itself
// registered in the runtime netpoller (an epoll set is readable while it
// has events), and the loop waits there like any socket read, then
// collects the events with a non-blocking epoll_wait. A thread blocked in
// epoll_wait would hold a P in a system call: the runtime's sysmon would
// keep taking that P back (handing it off costs thread wake-ups) and, with
// one CPU, poll every 20 µs instead of backing off; that alone was about
// 15 % of the proxy's CPU under short-connection load.
type poller struct {
	epfd  int
	file  *os.File // epfd, for waiting in the runtime netpoller
	mu    sync.Mutex
	slots []*half // by token
	free  []int32
	gen   int32
}

var thePollers struct {
	once sync.Once
	ps   []*poller
}

// getPoller returns the poller for socket descriptor fd, starting the
// process's pollers on first use; nil if epoll is unavailable (directions
// then wait in the runtime netpoller).
func getPoller(fd int) *poller {
	thePollers.once.Do(func() {
		if os.Getenv("PRISM_RELAY_POLLER") == "off" {
			return // waits happen in the runtime netpoller (a goroutine per waiting direction)
		}
		for range max(runtime.GOMAXPROCS(0), 1) {
			p, err := newPoller()
			if err != nil {
				slog.Warn("relay: no epoll, idle connections keep a goroutine", "err", err)
				break
			}
			thePollers.ps = append(thePollers.ps, p)
			go p.loop()
		}
	})
	if n := len(thePollers.ps); n > 0 {
		return thePollers.ps[uint(fd)%uint(n)]
	}
	return nil
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the runtime poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set non-blocking: %w", err)
	}
	return &poller{epfd: fd, file: os.NewFile(uintptr(fd), "relay-epoll")}, nil
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
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(h.srcFD), &ev); err != nil {
			h.registered = false
			p.release(h)
			return err
		}
		return nil
	}
	ev := unix.EpollEvent{Events: armEvents, Fd: h.token, Pad: h.gen}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(h.srcFD), &ev)
}

// unregister removes h's socket from the set; it must run before the
// socket is closed.
func (p *poller) unregister(h *half) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(h.srcFD), nil)
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
	rc, err := p.file.SyscallConn()
	if err != nil {
		slog.Error("relay: epoll set not pollable; parked connections stall", "err", err)
		return
	}
	var (
		events [128]unix.EpollEvent
		n      int
		werr   error
	)
	collect := func(fd uintptr) bool {
		n, werr = epollWaitNow(int(fd), events[:])
		return n != 0 || (werr != nil && werr != unix.EINTR)
	}
	for {
		if err := rc.Read(collect); err != nil {
			slog.Error("relay: waiting on the epoll set failed; parked connections stall", "err", err)
			return
		}
		if werr != nil {
			if werr == unix.EINTR {
				continue
			}
			slog.Error("relay: epoll_wait failed; parked connections stall", "err", werr)
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

// epollWaitNow collects ready events without blocking. It is a raw system
// call: it never sleeps, so the runtime need not be told about it.
func epollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Waiting without the poller (or, on the conn path, checking a kernel
// socket for data before borrowing a buffer).

// peekWait is a RawConn.Read callback that returns once src has data,
// EOF or an error queued, without consuming any data. A socket error it
// finds is consumed by the peek (a later read would say EOF instead of,
// say, "connection reset"): it is kept in peekErr for the step to report.
func (h *half) peekWait(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), h.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch err {
	case syscall.EAGAIN, syscall.EINTR:
		return false
	case nil:
	default:
		if h.peekErr == nil {
			h.peekErr = err
		}
	}
	return true
}

// peekTry is peekWait that never waits: it sets again instead.
func (h *half) peekTry(fd uintptr) bool {
	h.again = !h.peekWait(fd)
	return true
}
