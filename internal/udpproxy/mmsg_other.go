//go:build (unix && !linux) || portable

package udpproxy

import (
	"syscall"
	"unsafe"
)

// The portable fallback of mmsg_linux.go for the other Unix systems, which
// have no recvmmsg/sendmmsg: a batch moves one recvmsg(2) or sendmsg(2) per
// datagram, with the same results as the batched calls (the number of
// messages moved; an error only when none moved, the next call reports it
// otherwise), and likewise with MSG_DONTWAIT: they never wait, whatever
// the socket's blocking mode.

func recvmmsg(fd uintptr, hs []mmsghdr) (int, syscall.Errno) {
	return eachMsg(syscall.SYS_RECVMSG, fd, hs)
}

func sendmmsg(fd uintptr, hs []mmsghdr) (int, syscall.Errno) {
	return eachMsg(syscall.SYS_SENDMSG, fd, hs)
}

// eachMsg makes the system call trap (recvmsg or sendmsg) once per message
// header, until one fails or all are done.
func eachMsg(trap, fd uintptr, hs []mmsghdr) (int, syscall.Errno) {
	n := 0
	for n < len(hs) {
		r, _, e := syscall.Syscall(trap, fd, uintptr(unsafe.Pointer(&hs[n].Hdr)), syscall.MSG_DONTWAIT)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			if n > 0 {
				return n, 0
			}
			return 0, e
		}
		hs[n].Len = uint32(r)
		n++
	}
	return n, 0
}
