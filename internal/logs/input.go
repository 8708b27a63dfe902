package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// input reads the records of one file: ndjson (a JSON object per line) or
// CSV (a header row, then RFC 4180 rows), gzip-compressed or not, told
// apart by their first bytes. Line numbers count from 1 in the
// uncompressed text.
type input struct {
	name string
	br   *bufio.Reader
	gz   *gzip.Reader
	line int // lines read so far
	// crlf reports that the last line read ended in "\r\n": inside a
	// quoted CSV cell the line break is the cell's text, kept as it was
	crlf bool
	csv  bool
	// header holds the CSV column names.
	header [][]byte
	long   []byte // a line longer than the reader's buffer
	cells  [][]byte
	cellB  []byte
	// raw is the text of the last CSV row (its lines joined by "\n", or
	// "\r\n" inside a quoted cell where the file has it),
	// headerRaw the header row's.
	raw       []byte
	headerRaw []byte
	closer    io.Closer
}

const readBuf = 256 << 10

func openInput(name string, stdin io.Reader) (*input, error) {
	in := &input{name: name}
	var r io.Reader
	if name == "-" {
		in.name = "(stdin)"
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		in.closer = f
		r = f
	}
	br := bufio.NewReaderSize(r, readBuf)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			in.close()
			return nil, fmt.Errorf("%s: gzip: %w", in.name, err)
		}
		in.gz = gz
		br = bufio.NewReaderSize(gz, readBuf)
	}
	in.br = br
	return in, nil
}

func (in *input) close() {
	if in.closer != nil {
		_ = in.closer.Close()
	}
}

// readLine returns the next line without its line ending, or io.EOF. A
// read error (a truncated gzip stream) is returned as it is, after the
// lines read before it.
func (in *input) readLine() ([]byte, error) {
	b, err := in.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		in.long = append(in.long[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = in.br.ReadSlice('\n')
			in.long = append(in.long, b...)
		}
		b = in.long
	}
	if len(b) == 0 && err != nil {
		return nil, in.readErr(err)
	}
	in.line++
	if in.line == 1 {
		// a UTF-8 BOM starts the text, not the first record (or header):
		// detect looks past it, and so must the reading
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	}
	n := len(b)
	b = trimEOL(b)
	in.crlf = n-len(b) == 2
	if err != nil && err != io.EOF {
		// the bytes before a broken stream are reported as that line
		return b, in.readErr(err)
	}
	return b, nil
}

func (in *input) readErr(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && in.gz != nil {
		return fmt.Errorf("gzip stream is truncated: %w", err)
	}
	if in.gz != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return err
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// detect peeks at the first non-blank byte: '{' means ndjson, anything
// else a CSV header row.
func (in *input) detect() {
	for n := 1; n <= 64; n++ {
		p, err := in.br.Peek(n)
		if len(p) < n {
			_ = err
			return
		}
		switch p[n-1] {
		case ' ', '\t', '\r', '\n', 0xef, 0xbb, 0xbf: // blanks and a UTF-8 BOM
			continue
		case '{':
			return
		default:
			in.csv = true
			return
		}
	}
}

// readCSVHeader reads the header row.
func (in *input) readCSVHeader() error {
	cells, _, err := in.readCSVRow()
	if err != nil {
		return err
	}
	in.headerRaw = append([]byte(nil), in.raw...)
	in.header = in.header[:0]
	for _, c := range cells {
		in.header = append(in.header, append([]byte(nil), c...))
	}
	return nil
}

// rowError is a CSV row that cannot be read. The row ends at the end of the
// line where it went wrong (the lines read for it are consumed), so the
// rows after it are read: one stray quote costs one record, not the rest
// of the file. last marks a row cut by a broken stream, after which
// nothing more can be read.
type rowError struct {
	msg  string
	last bool
}

func (e *rowError) Error() string { return e.msg }

// readCSVRow reads one RFC 4180 row (a quoted cell may span lines) and
// returns its cells and the line it started on. The cells stay valid until
// the next call. Blank lines between rows (empty, or only "\r") are
// skipped, except under a header of one column, where an empty line is a
// row with an empty cell (prism writes an empty value so).
func (in *input) readCSVRow() ([][]byte, int, error) {
	line, err := in.readLine()
	for err == nil && len(in.header) != 1 && (len(line) == 0 || len(line) == 1 && line[0] == '\r') {
		line, err = in.readLine()
	}
	if err != nil && line == nil {
		return nil, 0, err
	}
	start := in.line
	in.cells = in.cells[:0]
	in.cellB = in.cellB[:0]
	in.raw = append(in.raw[:0], line...)
	type span struct{ a, b int }
	var spans [64]span
	sp := spans[:0]
	i := 0
	for {
		// one cell
		a := len(in.cellB)
		if i < len(line) && line[i] == '"' {
			i++
			for {
				if i >= len(line) {
					// the quoted cell goes on on the next line, after the
					// line break this one ended with
					eol := "\n"
					if in.crlf {
						eol = "\r\n"
					}
					next, rerr := in.readLine()
					if rerr != nil && next == nil {
						if rerr == io.EOF {
							return nil, start, &rowError{msg: "unterminated quoted CSV cell (truncated record?)"}
						}
						return nil, start, &rowError{msg: rerr.Error(), last: true}
					}
					in.cellB = append(in.cellB, eol...)
					in.raw = append(append(in.raw, eol...), next...)
					// line may alias the reader's buffer: keep it in long
					in.long = append(in.long[:0], next...)
					line, i = in.long, 0
					continue
				}
				c := line[i]
				if c == '"' {
					if i+1 < len(line) && line[i+1] == '"' {
						in.cellB = append(in.cellB, '"')
						i += 2
						continue
					}
					i++
					break
				}
				in.cellB = append(in.cellB, c)
				i++
			}
			if i < len(line) && line[i] != ',' {
				return nil, start, &rowError{msg: fmt.Sprintf("CSV: text after a closing quote at column %d", i+1)}
			}
		} else {
			for i < len(line) && line[i] != ',' {
				if line[i] == '"' {
					return nil, start, &rowError{msg: fmt.Sprintf("CSV: quote inside an unquoted cell at column %d", i+1)}
				}
				in.cellB = append(in.cellB, line[i])
				i++
			}
		}
		sp = append(sp, span{a, len(in.cellB)})
		if i >= len(line) {
			break
		}
		i++ // ','
	}
	for _, s := range sp {
		in.cells = append(in.cells, in.cellB[s.a:s.b:s.b])
	}
	return in.cells, start, err
}
