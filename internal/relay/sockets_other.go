//go:build !linux || portable

package relay

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// The portable fallback of the Linux-only parts (loop_linux.go,
// sockets_linux.go, buffered_linux.go, splice_linux.go, peek_linux.go):
// no socket is taken for the loop path, so every relay takes the
// goroutine path (connpath.go), reading through net.Conn, which waits in
// the runtime netpoller; an idle direction keeps its goroutine (there is
// no loop to park in). The Mode changes nothing. The build tag portable
// selects this fallback on Linux too, so that its tests run there
// (go test -tags portable).

// rawConn is nil everywhere: there is no loop path here.
func rawConn(net.Conn) syscall.RawConn { return nil }

// pipesInUse and bufsInUse count the pipes and buffers the loop path
// holds between chunks: none here (the conn path holds a buffer only
// within connStep).
var pipesInUse, bufsInUse atomic.Int64

// maxIdlePipes bounds the spare pipes kept open: there are none here.
const maxIdlePipes = 0

// evloop is the Linux event loop, where directions also park; there is
// none here.
type evloop struct{}

var errNoLoop = errors.New("relay: no event loop on this platform")

func getLoop(int) *evloop               { return nil }
func (*evloop) arm(*half, uint32) error { return errNoLoop }
func (*evloop) unregister(*half)        {}

const armEvents, watchEvents = 0, 0

// peekWait and peekTry wait for or check src's readiness through its
// RawConn on Linux; here no direction has a RawConn (srcRaw is nil), so
// they are never called.
func (h *half) peekWait(uintptr) bool { return true }
func (h *half) peekTry(uintptr) bool  { return true }

// fdConn is the Linux loop path's relay state; there is no loop here,
// and a Relay's fl stays nil. fd only lets shared tests compile.
type fdConn struct{ fd [2]int32 }

// sweepEvery and quietAfter are the Linux loop's keepalive sweep and
// quiet spell; shared tests use them.
const (
	sweepEvery = 0
	quietAfter = 50 * time.Millisecond
)

func takeFDs(*Relay, syscall.RawConn, syscall.RawConn) bool { return false }
func (*fdConn) start(time.Time)                             {}
func (*fdConn) kick()                                       {}
