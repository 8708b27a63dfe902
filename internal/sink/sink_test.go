package sink

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
)

func batch(header string, lines ...string) *Batch {
	b := &Batch{Records: len(lines)}
	if header != "" {
		b.Header = []byte(header)
	}
	for _, l := range lines {
		b.Data = append(b.Data, l+"\n"...)
	}
	return b
}

func TestStreamHeaderOnce(t *testing.T) {
	var buf bytes.Buffer
	s := NewStream(&buf, nil)
	for _, b := range []*Batch{batch("h1,h2\n", "a,b"), batch("h1,h2\n", "c,d", "e,f")} {
		if err := s.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := buf.String(); got != "h1,h2\na,b\nc,d\ne,f\n" {
		t.Errorf("stream output %q", got)
	}
}

// TestStreamSharedLock: two jobs writing to one stream never interleave
// inside a batch.
func TestStreamSharedLock(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		// Write in two halves, as a partial write to a pipe might.
		buf.Write(p[:len(p)/2])
		time.Sleep(time.Microsecond)
		buf.Write(p[len(p)/2:])
		return len(p), nil
	})
	a, b := NewStream(w, &mu), NewStream(w, &mu)
	var wg sync.WaitGroup
	for _, s := range []*Stream{a, b} {
		wg.Go(func() {
			for range 50 {
				_ = s.Write(batch("", strings.Repeat("x", 100), strings.Repeat("y", 100)))
			}
		})
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if len(l) != 100 || strings.Trim(l, l[:1]) != "" {
			t.Fatalf("interleaved line %q", l)
		}
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}

func listBackups(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "app.csv" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// TestFileRotation: size rotation never splits a batch, every file starts
// with the header, max_backups keeps the newest copies.
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.csv")
	fl, err := OpenFile(prepared(t, Config{Type: TypeFile, Path: path, MaxSizeMB: 1, MaxBackups: 2}))
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	fl.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	line := strings.Repeat("z", 1023) // 1 KiB per record with its newline
	lines := make([]string, 300)
	for i := range lines {
		lines[i] = line
	}
	for range 20 { // 20 batches of 300 KiB: 3 batches fit in 1 MiB
		if err := fl.Write(batch("col\n", lines...)); err != nil {
			t.Fatal(err)
		}
	}
	fl.mu.Lock()
	fl.wakeMill()
	fl.mu.Unlock()
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	backups := listBackups(t, dir)
	if len(backups) != 2 {
		t.Fatalf("backups %v, want 2 (max_backups)", backups)
	}
	if backups[1] != "app-2026-11-22T04-00-06.000.csv" {
		t.Errorf("newest backup %s", backups[1])
	}
	for _, name := range append(backups, "app.csv") {
		s := readAll(t, filepath.Join(dir, name))
		if !strings.HasPrefix(s, "col\n") || strings.Count(s, "col\n") != 1 {
			t.Errorf("%s does not start with exactly one header", name)
		}
		body := strings.TrimPrefix(s, "col\n")
		if n := strings.Count(body, "\n"); n%300 != 0 || len(s) > 1<<20 {
			t.Errorf("%s: %d records, %d bytes: a batch was split or the size exceeded", name, n, len(s))
		}
	}
}

// TestFileRotationNeverReplacesABackup: rotations within one millisecond
// (every write of a batch larger than max_size_mb rotates first) and a
// compressed backup of that millisecond get backups of their own, named
// a millisecond apart in the order written: no record is lost.
func TestFileRotationNeverReplacesABackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.csv")
	clock := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	gz := filepath.Join(dir, "app-2026-11-22T04-00-00.000.csv.gz") // an earlier run's, compressed
	if err := os.WriteFile(gz, []byte("earlier"), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := OpenFile(prepared(t, Config{Type: TypeFile, Path: path, MaxSizeMB: 1}))
	if err != nil {
		t.Fatal(err)
	}
	fl.now = func() time.Time { return clock } // every rotation in the same millisecond
	const n = 6
	big := strings.Repeat("z", 1<<20) // one record larger than max_size_mb
	for i := range n {
		if err := fl.Write(batch("", fmt.Sprintf("%d %s", i, big))); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err := os.ReadFile(gz); err != nil || string(p) != "earlier" {
		t.Fatalf("the compressed backup was replaced (%v)", err)
	}
	bs, err := fl.backups()
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != n { // n-1 rotated files and the earlier .gz
		t.Fatalf("%d backups, want %d: %v", len(bs), n, listBackups(t, dir))
	}
	for i := range n - 1 { // oldest first after the .gz; the last batch is in app.csv
		b := bs[n-2-i]
		if want := clock.Add(time.Duration(i+1) * time.Millisecond); !b.t.Equal(want) {
			t.Errorf("backup %s: time %v, want %v", b.path, b.t, want)
		}
		if s := readAll(t, b.path); !strings.HasPrefix(s, fmt.Sprintf("%d ", i)) {
			t.Errorf("backup %s holds batch %.3q, want %d", b.path, s, i)
		}
	}
	if s := readAll(t, path); !strings.HasPrefix(s, fmt.Sprintf("%d ", n-1)) {
		t.Errorf("current file holds %.3q, want batch %d", s, n-1)
	}
}

func TestFileCompressAndAge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.csv")
	// An old backup left by an earlier run is removed by max_age_days.
	old := filepath.Join(dir, "app-2020-01-01T00-00-00.000.csv")
	if err := os.WriteFile(old, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fl, err := OpenFile(prepared(t, Config{Type: TypeFile, Path: path, MaxAgeDays: 30, Compress: true}))
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Write(batch("", "one")); err != nil {
		t.Fatal(err)
	}
	if err := fl.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := fl.Write(batch("", "two")); err != nil {
		t.Fatal(err)
	}
	if err := fl.Close(); err != nil { // waits for the compression
		t.Fatal(err)
	}
	backups := listBackups(t, dir)
	if len(backups) != 1 || !strings.HasSuffix(backups[0], ".csv.gz") {
		t.Fatalf("backups %v", backups)
	}
	if s := readAll(t, filepath.Join(dir, backups[0])); s != "one\n" {
		t.Errorf("compressed backup holds %q", s)
	}
	if s := readAll(t, path); s != "two\n" {
		t.Errorf("current file holds %q", s)
	}
}

// TestFileReopen: after an external rotation (mv) and Reopen, records go to
// a new file at the configured path.
func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.csv")
	fl, err := OpenFile(prepared(t, Config{Type: TypeFile, Path: path}))
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	_ = fl.Write(batch("h\n", "a"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	_ = fl.Write(batch("h\n", "b")) // still the moved file
	if err := fl.Reopen(); err != nil {
		t.Fatal(err)
	}
	_ = fl.Write(batch("h\n", "c"))
	if s := readAll(t, path+".1"); s != "h\na\nb\n" {
		t.Errorf("moved file %q", s)
	}
	if s := readAll(t, path); s != "h\nc\n" {
		t.Errorf("reopened file %q", s)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Type: TypeStdout}, ""},
		{Config{Type: TypeFile, Path: filepath.Join(dir, "x.log")}, ""},
		{Config{Type: TypeFile}, "path: is required"},
		{Config{Type: TypeFile, Path: dir}, "is a directory"},
		{Config{Type: TypeStdout, Path: "/x"}, "path: is only valid for type file"},
		{Config{Type: TypeFile, Path: "/tmp/x", MaxBackups: -1}, "max_backups: must not be negative"},
		{Config{Type: "kafka"}, `type: unknown destination type "kafka"`},
	}
	for _, tc := range tests {
		errs := tc.cfg.Validate()
		switch {
		case tc.want == "" && len(errs) != 0:
			t.Errorf("%+v: %v", tc.cfg, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.cfg, errs, tc.want)
		}
	}
}

// prepared is c defaulted and validated, as New and OpenFile expect it.
func prepared(t testing.TB, c Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
