package filewatch

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func stat(t *testing.T, path string) Stamp {
	t.Helper()
	st, err := Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStampChanges: a Stamp changes with the size, with the modification
// time alone, and with the inode alone (a same-size file renamed over the
// old one with the old modification time), and not otherwise.
func TestStampChanges(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write(t, p, "aaaa")
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	base := stat(t, p)
	if stat(t, p) != base {
		t.Fatal("an untouched file changed its Stamp")
	}

	write(t, p, "aaaaa")
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if stat(t, p) == base {
		t.Fatal("size change not seen")
	}

	write(t, p, "bbbb")
	if err := os.Chtimes(p, mtime.Add(time.Second), mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := stat(t, p); st == base || st.size != base.size {
		t.Fatalf("mtime change not seen (size %d, was %d)", st.size, base.size)
	}

	if runtime.GOOS != "windows" {
		write(t, p, "aaaa")
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		again := stat(t, p)
		if again != base {
			t.Fatal("same size and mtime in place should stamp the same")
		}
		q := filepath.Join(dir, "g")
		write(t, q, "cccc")
		if err := os.Chtimes(q, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(q, p); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, p); st == base || st.mtime != base.mtime || st.size != base.size {
			t.Fatal("replacement by rename (same size and mtime) not seen")
		}
	}

	if st, err := Stat(filepath.Join(dir, "missing")); err == nil || st != (Stamp{}) {
		t.Fatalf("Stat of a missing file: %v, %v", st, err)
	}
}

// TestFilesChanged: a set notices a change to any member, a member going
// missing and coming back, and reports each change once.
func TestFilesChanged(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a")
	write(t, b, "b")
	f := NewFiles(a, b)
	if f.Changed() {
		t.Fatal("changed with nothing touched")
	}
	write(t, b, "bb")
	if !f.Changed() || f.Changed() {
		t.Fatal("a change must be reported exactly once")
	}
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if !f.Changed() || f.Changed() {
		t.Fatal("a file going missing must be reported exactly once")
	}
	write(t, a, "a")
	if !f.Changed() {
		t.Fatal("a file coming back not seen")
	}
	write(t, a, "aaa")
	f.Look()
	if f.Changed() {
		t.Fatal("Look did not remember the current version")
	}
	if got := f.Paths(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Paths = %v", got)
	}
}

// TestPollerChecksUntilClosed: checks run on the interval, Close waits
// for the goroutine to end, no check runs after Close returns, and Close
// may be called again and concurrently.
func TestPollerChecksUntilClosed(t *testing.T) {
	var n atomic.Int64
	ran := make(chan struct{}, 1)
	p := Start(time.Millisecond, func() {
		n.Add(1)
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	for range 3 {
		select {
		case <-ran:
		case <-time.After(5 * time.Second):
			t.Fatal("no check within 5s")
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(p.Close)
	}
	wg.Wait()
	after := n.Load()
	select {
	case <-p.done:
	default:
		t.Fatal("Close returned before the goroutine ended")
	}
	p.Close()
	if n.Load() != after {
		t.Fatal("a check ran after Close")
	}
	noPollerGoroutine(t)
}

func TestPollerOffAndNil(t *testing.T) {
	p := Start(0, func() { t.Error("check ran with polling off") })
	p.Close()
	Start(-time.Second, func() { t.Error("check ran with polling off") }).Close()
	var nilP *Poller
	nilP.Close()
	noPollerGoroutine(t)
}

// noPollerGoroutine fails if a Poller goroutine is still running once the
// ones just closed have had time to return.
func noPollerGoroutine(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "filewatch.Start.func") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a Poller goroutine outlived Close:\n%s", stacks)
		}
		runtime.Gosched()
	}
}
