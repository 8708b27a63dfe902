package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// prepared is c defaulted and validated, as Open expects it.
func prepared(t testing.TB, c Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, c Config) *Spool {
	t.Helper()
	s, corrupt, err := Open(prepared(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != 0 {
		t.Fatalf("%d corrupt files", corrupt)
	}
	return s
}

func TestPutLoadRemoveAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	b1 := sinktest.Batch(t0, 1, 2, 2)
	b1.Header = []byte("a,b\n")
	b1.Prefix, b1.Suffix, b1.Delim = []byte("["), []byte("]\n"), []byte(",")
	b2 := sinktest.Batch(t0.Add(time.Minute), 3)
	for _, b := range []*sink.Batch{b1, b2} {
		if acc, ev, err := s.Put(b); err != nil || acc != b.Records || ev != 0 {
			t.Fatalf("put: %d %d %v", acc, ev, err)
		}
	}
	if st := s.Stats(); st.Batches != 2 || st.Records != 4 || !st.Oldest.Equal(t0) || st.Bytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, _, err := Open(prepared(t, Config{Dir: dir})); err == nil {
		t.Fatal("a second Open of a locked spool succeeded")
	}
	s.Close()

	// A crash leaves a temporary file: it is removed, the rest survives.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-99"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, ".tmp-99")); !os.IsNotExist(err) {
		t.Fatal("temporary file left in place")
	}
	e, ok := s.Oldest()
	if !ok || e.Records != 3 {
		t.Fatalf("oldest %+v %v", e, ok)
	}
	var got sink.Batch
	if err := s.Load(e, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, b1.Data) || !bytes.Equal(got.Header, b1.Header) || got.Records != 3 ||
		string(got.Body()) != string(b1.Body()) || got.Keys[2] != b1.Keys[2] || got.Ends[1] != b1.Ends[1] || !got.First.Equal(b1.First) || !got.Last.Equal(b1.Last) {
		t.Fatalf("loaded %+v\nwant %+v", got, b1)
	}
	if err := s.Remove(e); err != nil {
		t.Fatal(err)
	}
	e, _ = s.Oldest()
	if e.Records != 1 {
		t.Fatalf("next oldest %+v", e)
	}
	if err := s.DeadLetter(e); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Batches != 0 || st.Bytes != 0 {
		t.Fatalf("after remove and dead-letter: %+v", st)
	}
	dead, _ := os.ReadDir(filepath.Join(dir, "dead"))
	if len(dead) != 1 {
		t.Fatalf("dead-letter dir holds %d files", len(dead))
	}
}

func TestFullPolicies(t *testing.T) {
	big := sinktest.Batch(t0, make([]uint32, 6000)...) // ~200 KiB
	for _, tc := range []struct {
		policy           string
		wantAcc, wantEv  int
		wantOldestRecord bool
	}{
		{DropOldest, big.Records, big.Records, true},
		{DropNewest, 0, 0, false},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			s := open(t, Config{Dir: t.TempDir(), MaxBytes: 1 << 20, WhenFull: tc.policy})
			defer s.Close()
			n := 0
			for {
				acc, ev, err := s.Put(big)
				if err != nil {
					t.Fatal(err)
				}
				if acc != big.Records || ev != 0 {
					if acc != tc.wantAcc || ev != tc.wantEv {
						t.Fatalf("put %d on a full spool: accepted %d evicted %d, want %d %d", n, acc, ev, tc.wantAcc, tc.wantEv)
					}
					break
				}
				n++
				if n > 10 {
					t.Fatal("1 MiB spool took more than 10 200 KiB batches")
				}
			}
			if st := s.Stats(); st.Bytes > 1<<20 {
				t.Fatalf("spool grew past max_bytes: %+v", st)
			}
		})
	}
}

func TestDropOldestSparesTheBatchInFlight(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir(), MaxBytes: 1 << 20})
	defer s.Close()
	big := sinktest.Batch(t0, make([]uint32, 6000)...)
	s.Put(big)
	first, _ := s.Oldest() // in flight
	for i := 0; i < 12; i++ {
		if _, _, err := s.Put(big); err != nil {
			t.Fatal(err)
		}
	}
	if e, _ := s.Oldest(); e.Seq != first.Seq {
		t.Fatalf("the batch in flight (%d) was evicted; oldest is %d", first.Seq, e.Seq)
	}
}

func TestCorruptFileGoesToDeadLetter(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	s.Put(sinktest.Batch(t0, 1))
	e, _ := s.Oldest()
	s.Close()
	p := s.path(e.Seq)
	data, _ := os.ReadFile(p)
	data[len(data)-10] ^= 0xff
	os.WriteFile(p, data, 0o600)
	s, _, err := Open(prepared(t, Config{Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, _ = s.Oldest()
	if err := s.Load(e, new(sink.Batch)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a flipped byte: Load says %v, want ErrCorrupt", err)
	}
	os.Truncate(p, 20)
	s.Close()
	s, corrupt, err := Open(prepared(t, Config{Dir: dir}))
	if err != nil || corrupt != 1 {
		t.Fatalf("truncated file: corrupt=%d err=%v", corrupt, err)
	}
	s.Close()
}

// TestLoadErrorClasses: Load's error says what the caller does with the
// batch: ErrCorrupt, a dead letter at once; a shortage (IsShortage: too
// many open files), load it again however often it fails; any other (an
// error of the file: EISDIR here, the real thing; EIO from a bad sector),
// a few more loads, then a dead letter.
func TestLoadErrorClasses(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	defer s.Close()
	s.Put(sinktest.Batch(t0, 1))
	e, _ := s.Oldest()
	p := s.Path(e)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), p); err != nil {
		t.Fatal(err)
	}
	err := s.Load(e, new(sink.Batch))
	if !errors.Is(err, syscall.EISDIR) || errors.Is(err, ErrCorrupt) || IsShortage(err) {
		t.Fatalf("a path that leads to a directory: Load says %v; want EISDIR, neither corrupt nor a shortage", err)
	}
	for errno, want := range map[syscall.Errno]bool{
		syscall.EMFILE: true, syscall.ENFILE: true, syscall.ENOMEM: true, syscall.ENOBUFS: true,
		syscall.EIO: false, syscall.EACCES: false, syscall.EISDIR: false,
	} {
		err := fmt.Errorf("spool: %w", &os.PathError{Op: "open", Path: p, Err: errno}) // as Load wraps it
		if got := IsShortage(err); got != want {
			t.Errorf("IsShortage(%v) = %v, want %v", err, got, want)
		}
	}
	if IsShortage(fmt.Errorf("spool: %w: checksum mismatch", ErrCorrupt)) {
		t.Error("a corrupt file is a shortage")
	}
}

// deadFiles maps the names in dir's dead-letter directory to their bytes.
func deadFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "dead"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, de := range ents {
		p, err := os.ReadFile(filepath.Join(dir, "dead", de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = string(p)
	}
	return out
}

// TestDeadLettersAreNeverReplaced: sequence numbers continue after an
// earlier run's dead letters (a clean shutdown leaves the main directory
// empty), and a dead letter never replaces a file already in dead/.
func TestDeadLettersAreNeverReplaced(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	s.Put(sinktest.Batch(t0, 1, 2, 3))
	e, _ := s.Oldest()
	if err := s.DeadLetter(e); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := deadFiles(t, dir)

	s = open(t, Config{Dir: dir}) // restart: the main directory is empty
	defer s.Close()
	s.Put(sinktest.Batch(t0, 9))
	e2, _ := s.Oldest()
	if e2.Seq <= e.Seq {
		t.Errorf("sequence restarted after the dead letters: %d after %d", e2.Seq, e.Seq)
	}
	// A file in dead/ by the name the next dead letter would take.
	taken := filepath.Base(s.path(e2.Seq))
	if err := os.WriteFile(filepath.Join(dir, "dead", taken), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	before[taken] = "kept"
	if err := s.DeadLetter(e2); err != nil {
		t.Fatal(err)
	}
	after := deadFiles(t, dir)
	if len(after) != len(before)+1 {
		t.Fatalf("dead/ holds %d files, want %d: %v", len(after), len(before)+1, after)
	}
	for name, data := range before {
		if after[name] != data {
			t.Errorf("dead letter %s was replaced", name)
		}
	}
}

// TestDeadLetterKeepsTheBatchUntilItIsThere: a dead-letter directory an
// operator removed is made again; one that cannot be made fails
// DeadLetter and leaves the batch spooled (it was dropped from the index
// while its file stayed, and was sent again at the next start).
func TestDeadLetterKeepsTheBatchUntilItIsThere(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead")
	s := open(t, Config{Dir: dir})
	s.Put(sinktest.Batch(t0, 1, 2))
	s.Put(sinktest.Batch(t0, 3))
	e, _ := s.Oldest()
	if err := os.RemoveAll(dead); err != nil { // an operator cleaned up
		t.Fatal(err)
	}
	if err := s.DeadLetter(e); err != nil {
		t.Fatal(err)
	}
	if got := deadFiles(t, dir); len(got) != 1 {
		t.Fatalf("dead/ holds %d files, want 1", len(got))
	}

	e, _ = s.Oldest()
	if err := os.RemoveAll(dead); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dead, nil, 0o600); err != nil { // dead/ cannot be made
		t.Fatal(err)
	}
	if err := s.DeadLetter(e); err == nil {
		t.Fatal("DeadLetter succeeded without a dead-letter directory")
	}
	if st := s.Stats(); st.Batches != 1 || st.Records != 1 {
		t.Fatalf("after a failed DeadLetter the spool holds %+v, want the batch", st)
	}
	if e2, _ := s.Oldest(); e2.Seq != e.Seq {
		t.Fatalf("oldest is %d, want %d", e2.Seq, e.Seq)
	}
	if err := os.Remove(dead); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter(e); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, Config{Dir: dir})
	defer s.Close()
	if st := s.Stats(); st.Batches != 0 {
		t.Fatalf("dead-lettered batches are back after a restart: %+v", st)
	}
	if got := deadFiles(t, dir); len(got) != 1 {
		t.Fatalf("dead/ holds %d files, want 1", len(got))
	}
}

// TestPutWhoseDirectorySyncFailsLeavesNoFile: when the directory cannot be
// fsynced after the rename, Put fails (the records are counted as a write
// error) and takes the batch's file away: it was left unindexed, and the
// next start delivered the batch as well.
func TestPutWhoseDirectorySyncFailsLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	dirf := s.dirf
	closed, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	s.dirf = closed // Sync fails: file already closed
	if acc, _, err := s.Put(sinktest.Batch(t0, 1, 2)); err == nil || acc != 0 {
		t.Fatalf("Put with a failing directory sync: accepted %d, err %v", acc, err)
	}
	s.dirf = dirf
	if st := s.Stats(); st.Batches != 0 {
		t.Fatalf("the failed batch is indexed: %+v", st)
	}
	s.Close()
	s = open(t, Config{Dir: dir})
	defer s.Close()
	if st := s.Stats(); st.Batches != 0 {
		t.Fatalf("a batch Put refused is back at the next start: %+v", st)
	}
}
