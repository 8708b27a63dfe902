package proxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// stopAfter is a session's context as a stop landing after the phase's
// first look at it would make it: done from the n+1th Err on.
type stopAfter struct {
	context.Context
	n     int32
	calls atomic.Int32
}

func (c *stopAfter) Err() error {
	if c.calls.Add(1) > c.n {
		return errStopped
	}
	return nil
}

// TestProxyHeaderStopNeverUndone: readProxyHeader sets the header's read
// deadline and clears it, which undid a stop (a past deadline) that came
// before either: the read waited for header_timeout, or the connection
// went on. Now it looks at the session after each.
func TestProxyHeaderStopNeverUndone(t *testing.T) {
	a := &tcpApp{cfg: App{HeaderTimeout: 30 * time.Second}}
	stopped := &session{}
	stopped.stop()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		send string
	}{
		{"stopped before", stopped, ""}, // the front says nothing: only the stop can end the wait
		{"stopped during", &stopAfter{Context: context.Background(), n: 1}, "PROXY TCP4 198.51.100.7 127.0.0.1 4000 443\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			front, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer front.Close()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.send != "" {
				if _, err := front.Write([]byte(tc.send)); err != nil {
					t.Fatal(err)
				}
			}
			res := make(chan error, 1)
			go func() {
				ev := event.New("app", event.NewID(time.Now()))
				_, err := a.readProxyHeader(tc.ctx, c, &ev)
				res <- err
			}()
			select {
			case err := <-res:
				if !errors.Is(err, errStopped) {
					t.Fatalf("err %v, want the stop (%v)", err, errStopped)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the header wait outlived the stop")
			}
		})
	}
}

// TestSessionContext: the session's Done is closed by its stop, whether
// it was asked for before the stop or after, and Err says stopped from
// then on.
func TestSessionContext(t *testing.T) {
	before := &session{}
	done := before.Done()
	if before.Err() != nil {
		t.Fatal("Err before the stop")
	}
	before.stopWith("closed by an operator")
	after := &session{}
	after.stop()
	for _, ch := range []<-chan struct{}{done, after.Done()} {
		select {
		case <-ch:
		default:
			t.Fatal("Done not closed after the stop")
		}
	}
	if !errors.Is(before.Err(), context.Canceled) || !errors.Is(after.Err(), context.Canceled) {
		t.Fatalf("Err %v / %v after the stop, want context.Canceled", before.Err(), after.Err())
	}
}

// TestSessionStopTwice: a second stop (a second DELETE of the session, or
// the drain deadline after an operator's close) changes nothing: the
// first stop's detail stays, as the relay keeps its first cause. It
// closed Done's channel a second time, a panic.
func TestSessionStopTwice(t *testing.T) {
	ss := &session{}
	done := ss.Done()
	ss.stopWith("closed by an operator")
	ss.stop()
	<-done
	if _, detail := ss.stopState(); detail != "closed by an operator" {
		t.Fatalf("detail %q after a later shutdown stop, want the first stop's", detail)
	}
}

// TestSessionAfterFunc: a context made over the session registers with
// its AfterFunc (no goroutine of its own waits on Done), is cancelled by
// the stop with the session's error, and lets go of the session when it
// ends first; AfterFunc on a stopped session runs f at once.
func TestSessionAfterFunc(t *testing.T) {
	ss := &session{}
	ctx, cancel := context.WithCancel(ss)
	if ss.after == nil {
		t.Fatal("WithCancel over the session did not register with its AfterFunc")
	}
	cancel()
	if ss.after != nil {
		t.Fatal("a cancelled child stays registered with the session")
	}
	if ctx.Err() == nil {
		t.Fatal("cancel did not cancel the child")
	}

	ctx, cancel = context.WithTimeout(ss, time.Minute)
	defer cancel()
	ss.stopWith("closed by an operator")
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stop did not cancel a context made over the session")
	}
	if !errors.Is(ctx.Err(), errStopped) {
		t.Fatalf("child Err %v, want the session's (%v)", ctx.Err(), errStopped)
	}
	if ss.after != nil {
		t.Fatal("the stop kept its AfterFuncs")
	}

	ran := make(chan struct{})
	stop := ss.AfterFunc(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("AfterFunc on a stopped session did not run f")
	}
	if stop() {
		t.Fatal("stop reported that it stopped f, which ran")
	}
}
