// Package spool is a log job's disk spool: the batches a job has accepted
// and its destination has not yet taken, one file per batch, in a directory
// of their own. A batch is written to a temporary file, fsynced and renamed
// into place before Put returns, so a batch Put accepted survives a crash
// or a power cut; a restarted prism finds the spooled batches, oldest
// first, and delivers them. The spool is bounded by bytes: when it is full,
// Put drops the oldest batches (or refuses the new one, as configured) and
// says how many records that cost, so the caller can count them.
//
// Batches a destination refused for good go to a dead-letter subdirectory
// ("dead"), where an operator can look at them and resend them by hand.
//
// A job that finds the directory locked by the one it replaces (a reload's
// old pipeline, an upgrade's old process) spools into a side spool under
// it ("incoming/…", OpenSide) until the holder lets go, then moves those
// batches in (Absorb); Open takes in side spools whose job stopped first.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
)

// Policies for a full spool.
const (
	DropOldest = "drop_oldest"
	DropNewest = "drop_newest"
)

// DefaultMaxBytes bounds a spool when max_bytes is not set (1 GiB).
const DefaultMaxBytes = 1 << 30

// Config is a log job's "spool" section. An empty Dir means no spool.
type Config struct {
	Dir      string `yaml:"dir"`
	MaxBytes int64  `yaml:"max_bytes"`
	WhenFull string `yaml:"when_full"` // drop_oldest (default) | drop_newest
}

// Enabled reports whether a spool is configured.
func (c *Config) Enabled() bool { return c.Dir != "" }

// SetDefaults fills in max_bytes and when_full for a configured spool.
func (c *Config) SetDefaults() {
	if !c.Enabled() {
		return
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.WhenFull == "" {
		c.WhenFull = DropOldest
	}
}

// Validate checks the section; keys are relative to it.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if !c.Enabled() {
		if c.MaxBytes != 0 || c.WhenFull != "" {
			errs.Add("dir", "is required when the spool has other settings")
		}
		return errs
	}
	if !filepath.IsAbs(c.Dir) {
		errs.Add("dir", "%q is relative: give an absolute path (a relative one would depend on the directory prism was started in)", c.Dir)
	} else if st, err := os.Stat(c.Dir); err == nil && !st.IsDir() {
		errs.Add("dir", "%s exists and is not a directory", c.Dir)
	}
	if c.MaxBytes < 0 {
		errs.Add("max_bytes", "must not be negative")
	} else if c.MaxBytes > 0 && c.MaxBytes < 1<<20 {
		errs.Add("max_bytes", "must be at least 1 MiB (1048576), got %d", c.MaxBytes)
	}
	switch c.WhenFull {
	case "", DropOldest, DropNewest:
	default:
		errs.Add("when_full", "unknown policy %q (use drop_oldest or drop_newest)", c.WhenFull)
	}
	return errs
}

// Entry is one spooled batch.
type Entry struct {
	Seq     uint64
	Size    int64
	Records int
	First   time.Time // time of the batch's first record
}

// Spool is an open spool directory. Its methods are safe for concurrent use
// (the job's writer puts, the delivery goroutine loads and removes).
type Spool struct {
	dir        string
	max        int64
	dropOldest bool
	lock       *os.File
	dirf       *os.File

	mu       sync.Mutex
	entries  []Entry // pending, oldest first
	bytes    int64
	records  int
	next     uint64
	inflight uint64 // Seq being delivered (0: none); never evicted
	buf      []byte // Put's encode buffer (under mu)
	rbuf     []byte // Load's read buffer (the delivery goroutine's)
}

const (
	magic     = "PRSPOOL1"
	headSize  = len(magic) + 4*3 + 8*2 + 4*3
	suffix    = ".batch"
	deadDir   = "dead"
	sideDir   = "incoming"
	lockName  = "lock"
	tmpPrefix = ".tmp-"
)

// ErrLocked is Open's error when another open Spool (in this process or
// another) holds the directory's lock.
var ErrLocked = errors.New("spool directory locked")

// Open opens (creating) the spool directory c.Dir (c defaulted and
// validated, by package config or cfgerr.Prepare), locks it against a
// second prism process, removes half-written files a crash left behind and
// loads the index of spooled batches. Files that cannot be read are moved
// to the dead-letter directory; their count is returned as corrupt.
func Open(c Config) (s *Spool, corrupt int, err error) {
	s, corrupt, err = openDir(c)
	if err != nil {
		return nil, 0, err
	}
	n, err := s.absorbOrphans(c)
	if err != nil {
		s.Close()
		return nil, 0, err
	}
	return s, corrupt + n, nil
}

func openDir(c Config) (s *Spool, corrupt int, err error) {
	if err := os.MkdirAll(filepath.Join(c.Dir, deadDir), 0o700); err != nil {
		return nil, 0, fmt.Errorf("spool: create %s: %w", c.Dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(c.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			err = ErrLocked
		}
		return nil, 0, fmt.Errorf("spool %s is in use by another pipeline or process: %w", c.Dir, err)
	}
	dirf, err := os.Open(c.Dir)
	if err != nil {
		lock.Close()
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	s = &Spool{dir: c.Dir, max: c.MaxBytes, dropOldest: c.WhenFull != DropNewest, lock: lock, dirf: dirf, next: 1}
	// Sequence numbers continue after the dead letters too: a clean
	// shutdown leaves the main directory empty, and numbers started again
	// from 1 would name a new dead letter like an earlier run's.
	dead, err := os.ReadDir(filepath.Join(c.Dir, deadDir))
	if err != nil {
		s.Close()
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	for _, de := range dead {
		if seq, ok := batchSeq(de); ok {
			s.next = max(s.next, seq+1)
		}
	}
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		s.Close()
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			_ = os.Remove(filepath.Join(c.Dir, name)) // never acknowledged
			continue
		}
		seq, ok := batchSeq(de)
		if !ok {
			continue
		}
		s.next = max(s.next, seq+1)
		e, err := s.stat(seq)
		if err != nil {
			corrupt++
			_ = s.moveDead(s.path(seq)) // if it fails, the next Open tries again
			continue
		}
		s.entries = append(s.entries, e)
		s.bytes += e.Size
		s.records += e.Records
	}
	sort.Slice(s.entries, func(i, j int) bool { return s.entries[i].Seq < s.entries[j].Seq })
	return s, corrupt, nil
}

// OpenSide opens a side spool of c's spool, for a job that finds c.Dir
// locked by the pipeline or process it replaces (a reload, an upgrade):
// its batches are made durable there, in a directory of their own under
// c.Dir ("incoming/<pid>-<n>", locked as a spool is), until the holder
// lets go and the main spool Absorbs them. The side spool has the main
// one's bound and policy. One that is never absorbed (the process stopped
// first) is taken into the main spool by the next Open of it.
func OpenSide(c Config) (*Spool, error) {
	dir := filepath.Join(c.Dir, sideDir, strconv.Itoa(os.Getpid())+"-"+strconv.FormatUint(sideSeq.Add(1), 10)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", filepath.Dir(dir), err)
	}
	sc := c
	sc.Dir = dir
	s, _, err := openDir(sc)
	return s, err
}

var sideSeq atomic.Uint64

// Absorb moves every batch of side (from OpenSide, no longer written to)
// into s, after the batches s holds, and removes side's directory. It
// returns the records moved. s may go over its bound by what side held;
// the next Put makes room as the policy says. side is closed either way;
// batches it could not move stay in its directory, and the next Open of
// s takes them in.
func (s *Spool) Absorb(side *Spool) (records int, err error) {
	side.mu.Lock()
	ents := side.entries
	side.entries, side.bytes, side.records = nil, 0, 0
	side.mu.Unlock()
	records, err = s.take(side, ents)
	side.Close() // what take could not move stays for the next Open
	if err != nil {
		return records, err
	}
	return records, s.removeSide(side.dir)
}

// take renames side's batch files ents (oldest first) into s as its
// newest batches.
func (s *Spool) take(side *Spool, ents []Entry) (records int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range ents {
		seq := s.next
		from := side.path(e.Seq)
		if err := os.Rename(from, s.path(seq)); err != nil {
			return records, fmt.Errorf("spool: take over %s: %w", from, err)
		}
		s.next++
		e.Seq = seq
		s.entries = append(s.entries, e)
		s.bytes += e.Size
		s.records += e.Records
		records += e.Records
	}
	if len(ents) > 0 {
		if err := s.dirf.Sync(); err != nil {
			return records, fmt.Errorf("spool: sync %s: %w", s.dir, err)
		}
	}
	return records, nil
}

// removeSide removes a side spool's directory once its batches are taken,
// moving what its dead-letter directory holds to s's first.
func (s *Spool) removeSide(dir string) error {
	dead, _ := os.ReadDir(filepath.Join(dir, deadDir))
	for _, de := range dead {
		_ = os.Rename(filepath.Join(dir, deadDir, de.Name()), filepath.Join(s.dir, deadDir, filepath.Base(dir)+"-"+de.Name()))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("spool: remove %s: %w", dir, err)
	}
	return nil
}

// absorbOrphans takes in the side spools that no job holds any more (their
// process stopped before it could absorb them); one still locked belongs
// to a job that waits for s and absorbs it itself. It returns the count
// of unreadable files moved to the dead-letter directory.
func (s *Spool) absorbOrphans(c Config) (corrupt int, err error) {
	ents, err := os.ReadDir(filepath.Join(c.Dir, sideDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("spool: %w", err)
	}
	for _, de := range ents {
		if !de.IsDir() {
			continue
		}
		sc := c
		sc.Dir = filepath.Join(c.Dir, sideDir, de.Name())
		side, n, err := openDir(sc)
		if errors.Is(err, ErrLocked) {
			continue
		}
		if err != nil {
			return corrupt, err
		}
		corrupt += n
		if _, err := s.Absorb(side); err != nil {
			return corrupt, err
		}
	}
	return corrupt, nil
}

// batchSeq is the sequence number of a batch file's directory entry.
func batchSeq(de os.DirEntry) (uint64, bool) {
	seqStr, ok := strings.CutSuffix(de.Name(), suffix)
	if !ok || de.IsDir() {
		return 0, false
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	return seq, err == nil
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, suffix))
}

// stat reads the fixed header of a spooled file and checks its size.
func (s *Spool) stat(seq uint64) (Entry, error) {
	f, err := os.Open(s.path(seq))
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Entry{}, err
	}
	var h [headSize]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return Entry{}, err
	}
	records, hl, dl, fl, first, _, err := parseHead(h[:])
	if err != nil {
		return Entry{}, err
	}
	if want := fileSize(records, hl+fl, dl); st.Size() != want {
		return Entry{}, fmt.Errorf("size %d, want %d", st.Size(), want)
	}
	return Entry{Seq: seq, Size: st.Size(), Records: records, First: first}, nil
}

func fileSize(records, hl, dl int) int64 {
	return int64(headSize + hl + dl + records*(4+12) + 4)
}

// parseHead reads the fixed header: record count, header and data
// lengths, the total length of the batch framing (prefix, suffix,
// delimiter) and the first and last record times.
func parseHead(h []byte) (records, hl, dl, fl int, first, last time.Time, err error) {
	if string(h[:len(magic)]) != magic {
		return 0, 0, 0, 0, first, last, errors.New("not a spool file")
	}
	p := h[len(magic):]
	records = int(binary.LittleEndian.Uint32(p[0:]))
	hl = int(binary.LittleEndian.Uint32(p[4:]))
	dl = int(binary.LittleEndian.Uint32(p[8:]))
	if fn := int64(binary.LittleEndian.Uint64(p[12:])); fn != 0 {
		first = time.Unix(0, fn)
	}
	if ln := int64(binary.LittleEndian.Uint64(p[20:])); ln != 0 {
		last = time.Unix(0, ln)
	}
	for i := 0; i < 3; i++ {
		fl += int(binary.LittleEndian.Uint32(p[28+4*i:]))
	}
	return records, hl, dl, fl, first, last, nil
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// encode appends the file form of b to dst.
func encode(dst []byte, b *sink.Batch) []byte {
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.Records))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b.Header)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b.Data)))
	dst = binary.LittleEndian.AppendUint64(dst, unixNano(b.First))
	dst = binary.LittleEndian.AppendUint64(dst, unixNano(b.Last))
	for _, f := range [][]byte{b.Prefix, b.Suffix, b.Delim} {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f)))
	}
	dst = append(dst, b.Header...)
	dst = append(dst, b.Prefix...)
	dst = append(dst, b.Suffix...)
	dst = append(dst, b.Delim...)
	dst = append(dst, b.Data...)
	for i := 0; i < b.Records; i++ {
		dst = binary.LittleEndian.AppendUint32(dst, b.Ends[i])
	}
	for i := 0; i < b.Records; i++ {
		dst = append(dst, b.Keys[i][:]...)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst))
}

// decode fills b from the file form p (b's buffers are reused).
func decode(p []byte, b *sink.Batch) error {
	if len(p) < headSize+4 {
		return errors.New("short file")
	}
	if crc32.ChecksumIEEE(p[:len(p)-4]) != binary.LittleEndian.Uint32(p[len(p)-4:]) {
		return errors.New("checksum mismatch")
	}
	records, hl, dl, fl, first, last, err := parseHead(p[:headSize])
	if err != nil {
		return err
	}
	if int64(len(p)) != fileSize(records, hl+fl, dl) {
		return errors.New("bad length")
	}
	b.Reset()
	q := p[headSize:]
	b.Header = append(b.Header[:0], q[:hl]...)
	if hl == 0 {
		b.Header = nil
	}
	q = q[hl:]
	h := p[len(magic)+28:]
	for i, dst := range []*[]byte{&b.Prefix, &b.Suffix, &b.Delim} {
		n := int(binary.LittleEndian.Uint32(h[4*i:]))
		*dst = nil
		if n > 0 {
			*dst = append([]byte(nil), q[:n]...)
		}
		q = q[n:]
	}
	b.Data = append(b.Data, q[:dl]...)
	q = q[dl:]
	prev := uint32(0)
	for i := 0; i < records; i++ {
		e := binary.LittleEndian.Uint32(q[4*i:])
		if e < prev || int(e) > dl {
			b.Reset()
			return fmt.Errorf("record %d ends at %d, outside the data (%d bytes) or before the previous record", i, e, dl)
		}
		b.Ends, prev = append(b.Ends, e), e
	}
	q = q[4*records:]
	for i := 0; i < records; i++ {
		var id [12]byte
		copy(id[:], q[12*i:])
		b.Keys = append(b.Keys, id)
	}
	b.Records, b.First, b.Last = records, first, last
	return nil
}

// ErrTooBig is returned by Put for a batch larger than the whole spool.
var ErrTooBig = errors.New("batch is larger than the spool's max_bytes")

// Put writes b durably. It returns the records of b written (0 when
// drop_newest refused it) and the records of older batches drop_oldest
// removed to make room.
func (s *Spool) Put(b *sink.Batch) (accepted, evicted int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = encode(s.buf[:0], b)
	size := int64(len(s.buf))
	if size > s.max {
		return 0, 0, ErrTooBig
	}
	for s.bytes+size > s.max {
		if !s.dropOldest {
			return 0, evicted, nil
		}
		i := 0
		if len(s.entries) > 0 && s.entries[0].Seq == s.inflight {
			i = 1
		}
		if i >= len(s.entries) {
			break // only the batch being delivered is left: allow the overshoot
		}
		e := s.entries[i]
		if err := os.Remove(s.path(e.Seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, evicted, fmt.Errorf("spool: drop oldest: %w", err)
		}
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
		s.bytes -= e.Size
		s.records -= e.Records
		evicted += e.Records
	}
	seq := s.next
	s.next++
	tmp := filepath.Join(s.dir, tmpPrefix+strconv.FormatUint(seq, 10))
	if err := writeSync(tmp, s.buf); err != nil {
		_ = os.Remove(tmp)
		return 0, evicted, fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, s.path(seq)); err != nil {
		_ = os.Remove(tmp)
		return 0, evicted, fmt.Errorf("spool: %w", err)
	}
	if err := s.dirf.Sync(); err != nil {
		// The batch's name may not survive a crash, so it is not accepted
		// (the caller counts a write error). Its file goes too: left in
		// place unindexed, the next start would deliver the batch counted
		// as not written. If it cannot go, it is as durable as this disk
		// allows now: it is kept and accepted, and delivered this run.
		if rerr := os.Remove(s.path(seq)); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
			return 0, evicted, fmt.Errorf("spool: sync %s: %w", s.dir, err)
		}
	}
	s.entries = append(s.entries, Entry{Seq: seq, Size: size, Records: b.Records, First: b.First})
	s.bytes += size
	s.records += b.Records
	return b.Records, evicted, nil
}

func writeSync(path string, p []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(p); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Oldest returns the oldest spooled batch and marks it in flight (drop_oldest
// leaves it alone until Remove or DeadLetter).
func (s *Spool) Oldest() (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		return Entry{}, false
	}
	s.inflight = s.entries[0].Seq
	return s.entries[0], true
}

// ErrCorrupt is in Load's error when the batch file is not what Put wrote
// (gone, shorter than it was, or failing its checksum or framing): it will
// never load, and belongs in the dead-letter directory. Any other Load
// error may pass: a shortage (IsShortage) surely does; an error of the
// file itself (an I/O error, a path that is not a regular file) may.
var ErrCorrupt = errors.New("batch file is corrupt")

// IsShortage reports whether a Load error is a shortage of the process or
// the system (too many open files, no memory or buffers, an interrupted
// or would-block call) rather than a fault of the batch's file. Every
// batch would fail to load the same way meanwhile, so moving this one
// aside would help nothing: it is good, and is loaded again later however
// often that fails. Any other error that is not ErrCorrupt (EIO from a bad
// sector, EISDIR) is about this file: worth a few more reads, then the
// batch belongs in the dead-letter directory, or it holds up every batch
// behind it.
func IsShortage(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOBUFS, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Load reads entry e into b. Only the delivery goroutine calls it (it
// reuses one read buffer).
func (s *Spool) Load(e Entry, b *sink.Batch) error {
	name := filepath.Base(s.path(e.Seq))
	f, err := os.Open(s.path(e.Seq))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %s: %w: %w", name, ErrCorrupt, err)
		}
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if int64(cap(s.rbuf)) < e.Size {
		s.rbuf = make([]byte, e.Size)
	}
	p := s.rbuf[:e.Size]
	if _, err := io.ReadFull(f, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("spool: %s: %w: shorter than the %d bytes spooled: %w", name, ErrCorrupt, e.Size, err)
		}
		return fmt.Errorf("spool: %s: %w", name, err)
	}
	if err := decode(p, b); err != nil {
		return fmt.Errorf("spool: %s: %w: %w", name, ErrCorrupt, err)
	}
	return nil
}

// Remove deletes a delivered batch. The batch leaves the index first,
// whatever the removal does: it was delivered, and kept in the index it
// would be the oldest again and sent again at once, for as long as the
// file stays (a read-only disk). A file that cannot be removed stays on
// disk unindexed, and the next Open takes it in and sends it again: one
// duplicate, which at-least-once allows. The caller logs the error.
func (s *Spool) Remove(e Entry) error {
	s.forget(e)
	if err := os.Remove(s.path(e.Seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// DeadLetter moves a batch the destination refused (or that cannot be
// read) into the dead-letter directory. The batch leaves the spool's index
// only once it is there (or its file is gone): on an error it is still the
// oldest batch, and the caller tries again; a batch whose move failed would
// otherwise be sent again at the next start.
func (s *Spool) DeadLetter(e Entry) error {
	if err := s.moveDead(s.path(e.Seq)); err != nil {
		return err
	}
	s.forget(e)
	return nil
}

// moveDead moves the batch file from into the dead-letter directory,
// (re)creating it (an operator may have removed it), under a name no dead
// letter has: an earlier one is never replaced. A file already gone is
// not an error.
func (s *Spool) moveDead(from string) error {
	name := filepath.Base(from)
	dir := filepath.Join(s.dir, deadDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("spool: dead-letter %s: %w", name, err)
	}
	to, err := freeName(dir, name)
	if err != nil {
		return fmt.Errorf("spool: dead-letter %s: %w", name, err)
	}
	if err := os.Rename(from, to); err != nil {
		if _, serr := os.Lstat(from); errors.Is(serr, os.ErrNotExist) {
			return nil // already gone: nothing to keep
		}
		return fmt.Errorf("spool: dead-letter %s: %w", name, err)
	}
	return nil
}

// freeName is dir/name, or dir/<base>-<n><suffix> with the first n that
// no file has. Only the spool's holder writes its dead-letter directory.
func freeName(dir, name string) (string, error) {
	base := strings.TrimSuffix(name, suffix)
	p := filepath.Join(dir, name)
	for n := 1; ; n++ {
		_, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		p = filepath.Join(dir, base+"-"+strconv.Itoa(n)+suffix)
	}
}

func (s *Spool) forget(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == e.Seq {
		s.inflight = 0
	}
	for i, x := range s.entries {
		if x.Seq == e.Seq {
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
			s.bytes -= x.Size
			s.records -= x.Records
			return
		}
	}
}

// Stats is what the spool holds right now.
type Stats struct {
	Bytes   int64
	Batches int
	Records int
	// Oldest is the time of the first record of the oldest spooled batch
	// (zero when empty).
	Oldest time.Time
}

// Stats returns the spool's current size.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Bytes: s.bytes, Batches: len(s.entries), Records: s.records}
	if len(s.entries) > 0 {
		st.Oldest = s.entries[0].First
	}
	return st
}

// Path is the file of the spooled batch e, for log lines.
func (s *Spool) Path(e Entry) string { return s.path(e.Seq) }

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close releases the directory lock.
func (s *Spool) Close() error {
	s.dirf.Close()
	return s.lock.Close()
}
