//go:build !portable

package udpproxy

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvmmsg and sendmmsg move a whole batch in one system call; this is
// the Linux fast path (batch_unix.go has the memory they use,
// mmsg_other.go the one-datagram-at-a-time fallback).

// The socket calls below never block (MSG_DONTWAIT: a would-block comes
// back as EAGAIN and the caller waits in the runtime poller), so they are
// made as raw system calls. MSG_DONTWAIT, not only the socket's O_NONBLOCK:
// that flag belongs to the socket, which a binary upgrade shares with
// another process that may clear it (an older prism did, while handing its
// sockets over), and a raw call that sleeps in the kernel holds the thread
// and its P where the runtime cannot preempt it. Raw: a regular one tells the
// scheduler it entered a system call, and when the process had been idle
// that wakes the runtime's monitor thread (sysmon), which then polls every
// 20 µs for a while. At a few thousand datagrams a second those wake-ups
// and context switches cost more than the socket calls themselves.

func recvmmsg(fd uintptr, hs []mmsghdr) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

func sendmmsg(fd uintptr, hs []mmsghdr) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}

// epollPoll returns the ready events of the epoll set ep without waiting
// (a raw system call, like recvmmsg).
func epollPoll(ep uintptr, events []unix.EpollEvent) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, ep, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), 0
	}
}
