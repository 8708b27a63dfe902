package sink

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

const fsizeLimit = 10000 // bytes a file may grow to in the child

// TestShortWriteKeepsWholeRecords makes the kernel cut writes short, as a
// full disk does: a child process (this test binary) runs with
// RLIMIT_FSIZE, where a write past the limit writes what fits and then
// fails with EFBIG. A partial line was once left for the next record to be
// appended to, and the whole batch was counted as lost. Now the file holds
// only whole records, and the records counted as written are exactly the
// lines in the file.
//
// The records of the second run hold a newline inside (as a CSV cell with a
// line feed does, or a record_prefix of "\n"): a record ends where the
// batch's Ends say, not at its first newline, which once left half a
// record in the file and counted it as written.
func TestShortWriteKeepsWholeRecords(t *testing.T) {
	if path := os.Getenv("PRISM_SINK_FSIZE_CHILD"); path != "" {
		fsizeChild(path, os.Getenv("PRISM_SINK_FSIZE_LINES") == "2")
		return
	}
	for _, lines := range []string{"1", "2"} {
		t.Run("lines-"+lines, func(t *testing.T) { testShortWrite(t, lines == "2") })
	}
}

func testShortWrite(t *testing.T, twoLines bool) {
	path := filepath.Join(t.TempDir(), "records.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestShortWriteKeepsWholeRecords$", "-test.count=1")
	cmd.Env = testpeer.ReRunEnv("PRISM_SINK_FSIZE_CHILD="+path, fmt.Sprintf("PRISM_SINK_FSIZE_LINES=%d", map[bool]int{false: 1, true: 2}[twoLines]))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var written, failed, partial int
	if _, err := fmt.Sscanf(lastLine(string(out), "written="), "written=%d failed=%d partial=%d", &written, &failed, &partial); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range written {
		want.WriteString(record(i, twoLines))
	}
	if string(data) != want.String() {
		t.Fatalf("file of %d bytes is not the %d records counted as written (%d bytes); it ends %q", len(data), written, want.Len(), data[max(0, len(data)-60):])
	}
	if partial == 0 || failed == 0 || written+failed != 20*10 {
		t.Fatalf("written %d + failed %d of 200, %d partial batches: the limit was not hit as planned", written, failed, partial)
	}
}

func lastLine(out, prefix string) string {
	ls := strings.Split(out, "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.HasPrefix(ls[i], prefix) {
			return ls[i]
		}
	}
	return ""
}

// record is the i-th record: 97 bytes, so that batches of ten end off the
// limit; with twoLines a newline sits in its middle.
func record(i int, twoLines bool) string {
	s := fmt.Sprintf("{\"n\":%d,\"pad\":\"", i)
	r := s + strings.Repeat("x", 97-len(s)-3) + "\"}\n"
	if twoLines {
		r = r[:48] + "\n" + r[49:]
	}
	return r
}

func fsizeChild(path string, twoLines bool) {
	signal.Ignore(syscall.SIGXFSZ) // EFBIG instead of being killed
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("getrlimit:", err)
		os.Exit(1)
	}
	lim.Cur = fsizeLimit
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	c := Config{Type: TypeFile, Path: path, MaxSizeMB: -1}
	if err := cfgerr.Prepare(&c); err != nil {
		fmt.Println("config:", err)
		os.Exit(1)
	}
	f, err := OpenFile(c)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var written, failed, partial, n int
	for range 20 {
		var b Batch
		for range 10 {
			b.Data = append(b.Data, record(n, twoLines)...)
			b.Ends = append(b.Ends, uint32(len(b.Data)))
			b.Keys = append(b.Keys, event.ID{})
			b.Records++
			n++
		}
		err := f.Write(&b)
		k := Written(&b, err)
		if err != nil && k > 0 {
			partial++
		}
		written += k
		failed += b.Records - k
		if k < b.Records {
			n -= b.Records - k // the lost records are the next ones again, to keep the file's lines numbered
		}
	}
	_ = f.Close()
	fmt.Printf("written=%d failed=%d partial=%d\n", written, failed, partial)
}
