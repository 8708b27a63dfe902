package sink

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// backupTimeFormat names rotated files: access-2026-11-22T04-10-00.000.log.
const backupTimeFormat = "2006-01-02T15-04-05.000"

// File is a log file rotated by size, with a bounded number and age of
// rotated copies, optionally gzipped. It is small on purpose (instead of
// lumberjack/timberjack): it must know when a file starts, to write the CSV
// header at the top of each one, and it reopens on demand (SIGHUP after an
// external logrotate).
type File struct {
	cfg Config
	max int64 // bytes; 0 = no size rotation
	now func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64 // bytes in f (after a torn write: where its whole records end)
	torn bool  // f holds a partial record past size that could not be cut

	mill     chan struct{} // wakes the cleanup goroutine
	millDone chan struct{}
	closed   bool
}

// OpenFile opens (creating or appending to) c.Path; c is defaulted and
// validated (by package config, or cfgerr.Prepare).
func OpenFile(c Config) (*File, error) {
	fl := &File{cfg: c, now: time.Now, mill: make(chan struct{}, 1), millDone: make(chan struct{})}
	if c.MaxSizeMB > 0 {
		fl.max = int64(c.MaxSizeMB) << 20
	}
	if err := os.MkdirAll(filepath.Dir(c.Path), c.Mode.dirMode()); err != nil {
		return nil, fmt.Errorf("create log directory for %s: %w", c.Path, err)
	}
	if err := fl.open(); err != nil {
		return nil, err
	}
	go fl.millLoop()
	fl.wakeMill() // apply max_backups/max_age to what earlier runs left
	return fl, nil
}

func (fl *File) open() error {
	f, err := os.OpenFile(fl.cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, os.FileMode(fl.cfg.Mode))
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log file: %w", err)
	}
	fl.f, fl.size = f, st.Size()
	return nil
}

// Write appends b, rotating first if b would take the file past its size
// limit (a batch is never split across files). A fresh file starts with
// b.Header.
func (fl *File) Write(b *Batch) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return errors.New("write to closed log file " + fl.cfg.Path)
	}
	if fl.f == nil {
		if err := fl.open(); err != nil {
			return err
		}
	}
	data := b.Body()
	if fl.max > 0 && fl.size > 0 && fl.size+int64(len(data)) > fl.max {
		if err := fl.rotate(); err != nil {
			return err
		}
	}
	if fl.torn {
		// An earlier short write could not be cut back: never append to
		// a partial record.
		if err := fl.cut(fl.size); err != nil {
			return err
		}
	}
	if fl.size == 0 && len(b.Header) > 0 {
		n, err := fl.f.Write(b.Header)
		if err != nil {
			if n > 0 {
				_ = fl.cut(0)
			}
			return fmt.Errorf("write header to %s: %w", fl.cfg.Path, err)
		}
		fl.size += int64(n)
	}
	n, err := fl.f.Write(data)
	if err != nil {
		// A short write (a full disk) may end inside a record: keep the
		// whole records and cut the rest off, so that the file never holds
		// a partial record and the next batch starts on a record boundary.
		whole, kept := wholeRecords(b, n)
		start := fl.size
		fl.size += int64(n)
		if n > whole {
			if cerr := fl.cut(start + int64(whole)); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		werr := fmt.Errorf("write %d records to %s: %w", b.Records, fl.cfg.Path, err)
		if kept > 0 && !fl.torn {
			return &PartialError{Written: kept, Err: werr}
		}
		return werr
	}
	fl.size += int64(n)
	return nil
}

// wholeRecords returns how many bytes of the first n of b's body are
// whole records, and how many records that is. Records end where b.Ends
// says, which holds for a record with a newline inside (a CSV cell, a
// record_prefix of "\n"); counting newlines did not. With the job's batch
// framing (batch_prefix, batch_suffix, record_delimiter) nothing counts as
// whole, and the batch's bytes are cut back entirely.
func wholeRecords(b *Batch, n int) (whole, kept int) {
	if len(b.Prefix) > 0 || len(b.Suffix) > 0 || len(b.Delim) > 0 {
		return 0, 0
	}
	kept = sort.Search(len(b.Ends), func(i int) bool { return int(b.Ends[i]) > n })
	if kept > 0 {
		whole = int(b.Ends[kept-1])
	}
	return whole, kept
}

// cut truncates the file to size bytes (the end of its last whole record).
// When that fails the file is marked torn, and nothing more is written to
// it until a cut succeeds.
func (fl *File) cut(size int64) error {
	if err := fl.f.Truncate(size); err != nil {
		fl.torn = true
		return fmt.Errorf("cut partial record from %s: %w", fl.cfg.Path, err)
	}
	fl.torn, fl.size = false, size
	return nil
}

// rotate renames the current file to its backup name and opens a new one.
func (fl *File) rotate() error {
	if err := fl.f.Close(); err != nil {
		slog.Warn("close rotated log file", "path", fl.cfg.Path, "err", err)
	}
	fl.f = nil
	name, err := fl.backupName()
	if err != nil {
		return err
	}
	if err := os.Rename(fl.cfg.Path, name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate log file %s: %w", fl.cfg.Path, err)
	}
	if err := fl.open(); err != nil {
		return err
	}
	fl.wakeMill()
	return nil
}

// maxBackupSteps bounds backupName's search for a free name.
const maxBackupSteps = 100000

// backupName is the name the current file is rotated to: its time now, or
// the first millisecond after it that no backup has (compressed or not,
// or being compressed). Names have millisecond resolution and rename
// replaces its target, so two rotations in one millisecond (a batch larger
// than max_size_mb rotates before every write) would otherwise replace the
// earlier backup and lose records already counted as written. The stepped
// name still parses as a backup time and sorts after the earlier ones.
// Only this File makes backups of its path; the cleanup goroutine only
// turns a backup into its .gz (the name is taken throughout) or removes it.
func (fl *File) backupName() (string, error) {
	dir, prefix, ext := backupParts(fl.cfg.Path)
	t := fl.now().UTC()
	for range maxBackupSteps {
		name := filepath.Join(dir, prefix+t.Format(backupTimeFormat)+ext)
		free := true
		for _, p := range []string{name, name + ".gz", name + ".gz.tmp"} {
			if _, err := os.Lstat(p); err == nil {
				free = false
				break
			} else if !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("rotate log file %s: %w", fl.cfg.Path, err)
			}
		}
		if free {
			return name, nil
		}
		t = t.Add(time.Millisecond)
	}
	return "", fmt.Errorf("rotate log file %s: no free backup name within %d ms of %s", fl.cfg.Path, maxBackupSteps, fl.now().UTC().Format(backupTimeFormat))
}

// Rotate forces a rotation now.
func (fl *File) Rotate() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.f == nil {
		if err := fl.open(); err != nil {
			return err
		}
	}
	return fl.rotate()
}

// Reopen closes and reopens the file by name (after an external rotation).
func (fl *File) Reopen() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return nil
	}
	if fl.f != nil {
		_ = fl.f.Close()
		fl.f = nil
	}
	return fl.open()
}

// Close syncs and closes the file and waits for background compression.
func (fl *File) Close() error {
	fl.mu.Lock()
	if fl.closed {
		fl.mu.Unlock()
		return nil
	}
	fl.closed = true
	var err error
	if fl.f != nil {
		if e := fl.f.Sync(); e != nil {
			err = fmt.Errorf("sync %s: %w", fl.cfg.Path, e)
		}
		if e := fl.f.Close(); e != nil && err == nil {
			err = fmt.Errorf("close %s: %w", fl.cfg.Path, e)
		}
		fl.f = nil
	}
	fl.mu.Unlock()
	close(fl.mill)
	<-fl.millDone
	return err
}

func (fl *File) wakeMill() {
	select {
	case fl.mill <- struct{}{}:
	default:
	}
}

func (fl *File) millLoop() {
	defer close(fl.millDone)
	for range fl.mill {
		if err := fl.millOnce(); err != nil {
			slog.Warn("log file cleanup", "path", fl.cfg.Path, "err", err)
		}
	}
}

type backup struct {
	path string
	t    time.Time
	gz   bool
}

// backups lists the rotated copies of the file, newest first.
func (fl *File) backups() ([]backup, error) {
	dir, prefix, ext := backupParts(fl.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []backup
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, prefix) {
			continue
		}
		rest := name[len(prefix):]
		gz := strings.HasSuffix(rest, ext+".gz")
		if gz {
			rest = strings.TrimSuffix(rest, ext+".gz")
		} else if strings.HasSuffix(rest, ext) {
			rest = strings.TrimSuffix(rest, ext)
		} else {
			continue
		}
		t, err := time.Parse(backupTimeFormat, rest)
		if err != nil {
			continue
		}
		out = append(out, backup{path: filepath.Join(dir, name), t: t, gz: gz})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].t.After(out[j].t) })
	return out, nil
}

// millOnce removes backups beyond max_backups or older than max_age and
// compresses the rest if asked to.
func (fl *File) millOnce() error {
	bs, err := fl.backups()
	if err != nil {
		return err
	}
	var errs []error
	cutoff := time.Time{}
	if fl.cfg.MaxAgeDays > 0 {
		cutoff = fl.now().Add(-time.Duration(fl.cfg.MaxAgeDays) * 24 * time.Hour)
	}
	for i, b := range bs {
		if (fl.cfg.MaxBackups > 0 && i >= fl.cfg.MaxBackups) || (!cutoff.IsZero() && b.t.Before(cutoff)) {
			if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if fl.cfg.Compress && !b.gz {
			if err := gzipFile(b.path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// gzipFile replaces path with path.gz.
func gzipFile(path string) (err error) {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	tmp := path + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm()) // the rotated file's mode
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	zw := gzip.NewWriter(out)
	if _, err = io.Copy(zw, in); err != nil {
		return fmt.Errorf("compress %s: %w", path, err)
	}
	if err = zw.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", path, err)
	}
	if err = out.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", path, err)
	}
	if err = os.Rename(tmp, path+".gz"); err != nil {
		return err
	}
	return os.Remove(path)
}
