// Package sink holds the destinations of log jobs: where rendered batches of
// records go (stdout, a rotating file). A destination receives whole
// batches, already cut to the job's limits (max records, bytes, interval),
// and writes each with as few system calls as it can. Destinations are
// called from one writer goroutine per job, never from the data path, so a
// slow disk delays only that job's queue.
//
// Remote destinations (http, s3, kafka; the subpackages httpdst, s3dst and
// kafkadst) are Senders instead: they may fail for a while, and
// internal/deliver retries them, with a disk spool, behind the same
// Destination interface.
package sink

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
)

// Batch is a run of rendered records.
type Batch struct {
	// Header is written before the data at the top of every file or stream
	// the destination starts (the CSV header row); nil for ndjson.
	Header []byte
	// Data holds whole records, each ending in a newline.
	Data []byte
	// Records is the number of records in Data.
	Records int
	// Ends[i] is the offset in Data just past record i, and Keys[i] the
	// session the record belongs to: destinations that send records one by
	// one (Kafka, keyed by session) cut Data with them. Filled by the log
	// job for every record; len(Ends) == len(Keys) == Records.
	Ends []uint32
	Keys []event.ID
	// First and Last are the times of the first and last record in the
	// batch (object stores name objects by them).
	First, Last time.Time
	// Prefix, Suffix and Delim are the job's batch_prefix, batch_suffix
	// and record_delimiter (Logpush's output options): a destination that
	// writes the batch whole writes Body. Constant for a job; usually empty.
	Prefix, Suffix, Delim []byte

	body []byte // Body's scratch buffer
}

// Body is the batch as a destination writes it whole: Prefix, the records
// separated by Delim, Suffix (without Header). Without those options it is
// Data itself.
func (b *Batch) Body() []byte {
	if len(b.Prefix) == 0 && len(b.Suffix) == 0 && len(b.Delim) == 0 {
		return b.Data
	}
	p := append(b.body[:0], b.Prefix...)
	if len(b.Delim) == 0 {
		p = append(p, b.Data...)
	} else {
		for i := 0; i < b.Records; i++ {
			if i > 0 {
				p = append(p, b.Delim...)
			}
			p = append(p, b.Record(i)...)
		}
	}
	p = append(p, b.Suffix...)
	b.body = p
	return p
}

// Reset empties b for reuse, keeping its buffers.
func (b *Batch) Reset() {
	b.Data, b.Ends, b.Keys, b.Records = b.Data[:0], b.Ends[:0], b.Keys[:0], 0
	b.First, b.Last = time.Time{}, time.Time{}
}

// Record returns record i of b (with its delimiter).
func (b *Batch) Record(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = b.Ends[i-1]
	}
	return b.Data[start:b.Ends[i]]
}

// Destination takes batches. Write is called from one goroutine at a time;
// Close flushes and releases the destination.
type Destination interface {
	Write(b *Batch) error
	Close() error
}

// Reopener is a destination that can reopen its output (after an external
// log rotation moved the file away, on SIGHUP).
type Reopener interface {
	Reopen() error
}

// Destination types.
const (
	TypeStdout = "stdout"
	TypeFile   = "file"
)

// Config selects and configures a destination (a log job's "destination").
type Config struct {
	Type string `yaml:"type"` // stdout | file
	// Path of the log file (file only). Rotated files sit next to it as
	// name-<UTC time>.ext (optionally .gz).
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file before it would grow past this size.
	// Default 100; a negative value disables size rotation.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxBackups is how many rotated files to keep; 0 keeps all.
	MaxBackups int `yaml:"max_backups"`
	// MaxAgeDays removes rotated files older than this; 0 keeps them.
	MaxAgeDays int `yaml:"max_age_days"`
	// Compress gzips rotated files in the background.
	Compress bool `yaml:"compress"`
	// Mode is the permission of files prism creates (the log file, rotated
	// and compressed copies; directories get x where r is set). Default
	// 0640. An existing file keeps its mode.
	Mode FileMode `yaml:"mode"`
}

// SetDefaults fills in the default type (stdout) and rotation size.
func (c *Config) SetDefaults() {
	if c.Type == "" {
		c.Type = TypeStdout
	}
	if c.Type == TypeFile && c.MaxSizeMB == 0 {
		c.MaxSizeMB = 100
	}
	if c.Type == TypeFile && c.Mode == 0 {
		c.Mode = DefaultFileMode
	}
}

// Validate checks the destination section; keys are relative to it.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	switch c.Type {
	case TypeStdout, "":
		if c.Path != "" {
			errs.Add("path", "is only valid for type file")
		}
		for _, k := range []struct {
			key string
			set bool
		}{{"max_size_mb", c.MaxSizeMB != 0}, {"max_backups", c.MaxBackups != 0}, {"max_age_days", c.MaxAgeDays != 0}, {"compress", c.Compress}, {"mode", c.Mode != 0}} {
			if k.set {
				errs.Add(k.key, "is only valid for type file (stdout is not rotated)")
			}
		}
	case TypeFile:
		if c.Path == "" {
			errs.Add("path", "is required for type file")
		} else if !filepath.IsAbs(c.Path) {
			errs.Add("path", "%q is relative: give an absolute path (a relative one would depend on the directory prism was started in)", c.Path)
		} else if st, err := os.Stat(c.Path); err == nil && st.IsDir() {
			errs.Add("path", "%s is a directory", c.Path)
		}
		if c.Mode&0o002 != 0 {
			errs.Add("mode", "%v makes the log file world-writable", c.Mode)
		}
		if c.MaxBackups < 0 {
			errs.Add("max_backups", "must not be negative")
		}
		if c.MaxAgeDays < 0 {
			errs.Add("max_age_days", "must not be negative")
		}
	default:
		errs.Add("type", "unknown destination type %q (want stdout or file)", c.Type)
	}
	return errs
}

// New opens the destination c (defaulted and validated, by package config
// or cfgerr.Prepare) describes.
func New(c Config) (Destination, error) {
	switch c.Type {
	case TypeStdout:
		return NewStream(os.Stdout, &stdoutMu), nil
	case TypeFile:
		return OpenFile(c)
	}
	return nil, fmt.Errorf("unknown destination type %q", c.Type)
}

// stdoutMu serialises batches of all jobs that write to stdout, so that
// records of two jobs never interleave inside a line.
var stdoutMu sync.Mutex

// Stream writes batches to an io.Writer (stdout). The header, if any, is
// written once, before the first batch.
type Stream struct {
	w          io.Writer
	mu         *sync.Mutex
	headerDone bool
	buf        []byte
}

// NewStream returns a destination writing to w; mu, if not nil, is held
// around each batch (share it between streams on the same writer).
func NewStream(w io.Writer, mu *sync.Mutex) *Stream {
	if mu == nil {
		mu = new(sync.Mutex)
	}
	return &Stream{w: w, mu: mu}
}

// Write writes b in one Write call.
func (s *Stream) Write(b *Batch) error {
	p := b.Body()
	if !s.headerDone && len(b.Header) > 0 {
		s.buf = append(append(s.buf[:0], b.Header...), p...)
		p = s.buf
	}
	s.mu.Lock()
	_, err := s.w.Write(p)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write %d records to stdout: %w", b.Records, err)
	}
	s.headerDone = true
	return nil
}

// Close flushes w if it has a Sync method (it does not close stdout).
func (s *Stream) Close() error {
	if f, ok := s.w.(interface{ Sync() error }); ok {
		_ = f.Sync() // stdout may be a pipe: Sync failing there is normal
	}
	return nil
}

// backupParts splits path into the directory, name prefix and extension
// that rotated copies of it share.
func backupParts(path string) (dir, prefix, ext string) {
	dir = filepath.Dir(path)
	base := filepath.Base(path)
	ext = filepath.Ext(base)
	prefix = base[:len(base)-len(ext)] + "-"
	return dir, prefix, ext
}

// PartialError is a failed write after which the first Written records of
// the batch are in the destination, whole, and the rest are not: the file
// destination cuts a short write back to its last whole record.
type PartialError struct {
	Written int
	Err     error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%v (%d records written before the error)", e.Err, e.Written)
}

func (e *PartialError) Unwrap() error { return e.Err }

// Written returns how many records of b a destination's Write kept, given
// what it returned.
func Written(b *Batch, err error) int {
	if err == nil {
		return b.Records
	}
	var pe *PartialError
	if errors.As(err, &pe) {
		return min(pe.Written, b.Records)
	}
	return 0
}
