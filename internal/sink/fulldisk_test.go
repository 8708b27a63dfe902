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
)

const fsizeLimit = 10000 // bytes a file may grow to in the child

// TestShortWriteKeepsWholeRecords makes the kernel cut writes short, as a
// full disk does: a child process (this test binary) runs with
// RLIMIT_FSIZE, where a write past the limit writes what fits and then
// fails with EFBIG. A partial line was once left for the next record to be
// appended to, and the whole batch was counted as lost. Now the file holds
// only whole records, and the records counted as written are exactly the
// lines in the file.
func TestShortWriteKeepsWholeRecords(t *testing.T) {
	if path := os.Getenv("PRISM_SINK_FSIZE_CHILD"); path != "" {
		fsizeChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "records.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestShortWriteKeepsWholeRecords$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PRISM_SINK_FSIZE_CHILD="+path)
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
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("file of %d bytes does not end on a record boundary: %q", len(data), data[max(0, len(data)-40):])
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		if want := record(i); l+"\n" != want {
			t.Fatalf("line %d is %q, want %q", i+1, l, want)
		}
	}
	if len(lines) != written {
		t.Fatalf("%d records in the file, %d counted as written", len(lines), written)
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
// limit.
func record(i int) string {
	s := fmt.Sprintf("{\"n\":%d,\"pad\":\"", i)
	return s + strings.Repeat("x", 97-len(s)-3) + "\"}\n"
}

func fsizeChild(path string) {
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
			b.Data = append(b.Data, record(n)...)
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
