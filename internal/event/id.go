package event

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// ID identifies one TCP connection or UDP session across all its records.
// It has the layout of a 12-byte object id (4 bytes of Unix seconds, 5 random
// bytes fixed per process, a 3-byte counter), so ids sort by start time and
// render as 24 lowercase hex digits, the shape CloudConnexa's
// clientSessionId has.
type ID [12]byte

var (
	idProcess [5]byte
	idCounter atomic.Uint32
)

func init() {
	var b [8]byte
	_, _ = rand.Read(idProcess[:])
	_, _ = rand.Read(b[:])
	idCounter.Store(binary.BigEndian.Uint32(b[:4]))
}

// NewID returns a fresh id. It does not allocate.
func NewID(now time.Time) ID {
	var id ID
	binary.BigEndian.PutUint32(id[0:4], uint32(now.Unix()))
	copy(id[4:9], idProcess[:])
	c := idCounter.Add(1)
	id[9], id[10], id[11] = byte(c>>16), byte(c>>8), byte(c)
	return id
}

// IsZero reports whether id was never set.
func (id ID) IsZero() bool { return id == ID{} }

// AppendHex appends the 24-digit hex form of id to b.
func (id ID) AppendHex(b []byte) []byte { return hex.AppendEncode(b, id[:]) }

// String returns the 24-digit hex form of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }
