// Package filewatch notices when files on disk change, by polling: a
// Stamp (modification time, size and, where the platform has one, inode)
// taken now is compared with the one taken last time, and a Poller runs a
// check on its own goroutine every interval until it is closed.
//
// Polling rather than inotify survives editors and secret managers that
// replace a file by rename or swap a symlinked directory (Stat follows
// links, so a Kubernetes-style "..data" swap shows as a change), and costs
// a few stat calls per interval. The GeoIP databases, firewall list files
// and TLS certificates are watched this way; what to do on a change
// (reload, keep the old version, log, count) stays with their owners.
package filewatch

import (
	"os"
	"sync"
	"time"
)

// Stamp identifies one version of a file on disk. Two Stamps of the same
// path differ when the file was written, truncated or replaced. The zero
// Stamp is what Stat returns for a file it cannot stat.
type Stamp struct {
	mtime time.Time
	size  int64
	ino   uint64
}

// StampOf is the Stamp of fi (from os.Stat or an open file's Stat).
func StampOf(fi os.FileInfo) Stamp {
	return Stamp{mtime: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
}

// Stat is the Stamp of the file at path, following symlinks. On error it
// returns the zero Stamp and the error.
func Stat(path string) (Stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}, err
	}
	return StampOf(fi), nil
}

// Files is a set of paths loaded together (a certificate and its key) and
// the Stamps they had when last looked at. It is not safe for concurrent
// use; its owner serialises checks.
type Files struct {
	paths []string
	seen  []Stamp
}

// NewFiles returns a Files for paths, looked at now.
func NewFiles(paths ...string) *Files {
	f := &Files{paths: paths, seen: make([]Stamp, len(paths))}
	f.Look()
	return f
}

// Paths are the watched paths.
func (f *Files) Paths() []string { return f.paths }

// Look re-stats every path and remembers what it saw.
func (f *Files) Look() {
	for i, p := range f.paths {
		f.seen[i], _ = Stat(p)
	}
}

// Changed re-stats every path, remembers what it saw and reports whether
// any differs from the last look. A file that cannot be stat'ed counts as
// one more version: its disappearing and its coming back are each a change.
func (f *Files) Changed() bool {
	diff := false
	for i, p := range f.paths {
		st, _ := Stat(p)
		if st != f.seen[i] {
			f.seen[i] = st
			diff = true
		}
	}
	return diff
}

// Poller runs a check every interval on its own goroutine until Close.
type Poller struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Start runs check every interval until the Poller is closed. With a zero
// or negative interval nothing runs (polling is off) and Close returns at
// once. check runs on one goroutine, never concurrently with itself.
func Start(every time.Duration, check func()) *Poller {
	p := &Poller{stop: make(chan struct{}), done: make(chan struct{})}
	if every <= 0 {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				check()
			}
		}
	}()
	return p
}

// Close stops the Poller and waits for a check in progress to return. It
// may be called more than once and from several goroutines; a nil Poller
// is closed already.
func (p *Poller) Close() {
	if p == nil {
		return
	}
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
