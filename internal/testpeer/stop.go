package testpeer

import (
	"testing"
	"time"
)

// Stop kills the process and waits for it to exit, so that a test can take
// a peer away in the middle (an origin going down) and Start it again.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit within 10s of SIGKILL", p.cmd.Path)
	}
}
