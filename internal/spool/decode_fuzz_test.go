package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/sink"
)

// FuzzDecode: a spool file is read back after a crash or by another run,
// so its bytes are not trusted beyond their checksum. decode never panics,
// a batch it accepts has record ends inside its data (destinations cut the
// data at them), and what encode wrote decodes to the same batch. The
// fuzzer's bytes get a valid checksum appended so that it reaches past the
// checksum test.
func FuzzDecode(f *testing.F) {
	b := &sink.Batch{Header: []byte("h\n"), Data: []byte("a\nbc\n"), Records: 2, Ends: []uint32{2, 5},
		Keys: []event.ID{{1}, {2}}, First: t0, Last: t0, Delim: []byte(",")}
	good := encode(nil, b)
	f.Add(good[:len(good)-4])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, body []byte) {
		p := binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.ChecksumIEEE(body))
		var got sink.Batch
		if err := decode(p, &got); err != nil {
			return
		}
		if len(got.Ends) != got.Records || len(got.Keys) != got.Records {
			t.Fatalf("%d records, %d ends, %d keys", got.Records, len(got.Ends), len(got.Keys))
		}
		prev := uint32(0)
		for i, e := range got.Ends {
			if e < prev || int(e) > len(got.Data) {
				t.Fatalf("record %d ends at %d (previous %d, data %d bytes)", i, e, prev, len(got.Data))
			}
			prev = e
		}
		again := encode(nil, &got)
		if !bytes.Equal(again, p) {
			t.Fatalf("decode then encode changed the file:\n%q\n%q", p, again)
		}
	})
}
