//go:build linux

package relay

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUrgentDataSpliced: splice(2) stops at TCP's urgent mark and says
// EAGAIN there, and no new edge comes, so a spliced direction used to
// stall for good at an urgent (MSG_OOB) byte: nothing after it was
// forwarded or counted. Once EPOLLPRI was seen, a direction reads with
// recv(2), which steps over the mark (the urgent byte itself is out of
// band, as on the buffered path). ModeAuto is first moved onto splice by
// a bulk transfer.
func TestUrgentDataSpliced(t *testing.T) {
	for _, mode := range []Mode{ModeSplice, ModeAuto} {
		t.Run(mode.String(), func(t *testing.T) {
			tc, rc := tcpPair(t)
			ro, to := tcpPair(t)
			done := make(chan Result, 1)
			go func() { done <- New(rc, ro, Options{Mode: mode}).Run() }()
			var bulk []byte
			if mode == ModeAuto {
				bulk = randBytes(1 << 20)
				go func() { _, _ = tc.Write(bulk) }()
				_ = to.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(to, make([]byte, len(bulk))); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := tc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			_ = raw.Control(func(fd uintptr) {
				if serr = unix.Send(int(fd), []byte("abc"), 0); serr == nil {
					if serr = unix.Send(int(fd), []byte("X"), unix.MSG_OOB); serr == nil {
						serr = unix.Send(int(fd), []byte("def"), 0)
					}
				}
			})
			if serr != nil {
				t.Fatal(serr)
			}
			closeWrite(t, tc)
			_ = to.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(to)
			if err != nil || !bytes.Equal(got, []byte("abcdef")) {
				t.Fatalf("origin got %q (%v), want %q: stalled at the urgent mark", got, err, "abcdef")
			}
			_ = to.Close()
			select {
			case res := <-done:
				if want := int64(len(bulk) + 6); res.ClientBytes != want {
					t.Fatalf("ClientBytes %d, want %d", res.ClientBytes, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("relay did not end")
			}
		})
	}
}
