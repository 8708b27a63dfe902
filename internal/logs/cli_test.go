package logs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prismproxy/prism/internal/render"
)

// runMain runs `prism logs ARGS` with stdin (empty when nil) and returns
// the exit status and stderr.
func runMain(t *testing.T, stdin *os.File, args ...string) (int, string) {
	t.Helper()
	var out, diag bytes.Buffer
	var in io.Reader = bytes.NewReader(nil)
	if stdin != nil {
		in = stdin
	}
	code := Main(args, in, &out, &diag)
	return code, diag.String()
}

// noTemp fails when a temporary file of -o is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestOutputIsInput: -o naming one of the inputs (the same path, another
// name of it, a symlink to it, stdin) is a usage error, and the input is
// left whole.
func TestOutputIsInput(t *testing.T) {
	in := corpus(t, render.Spectrum, render.Options{})
	file := writeFile(t, "same.ndjson", in)
	dir := filepath.Dir(file)
	link := filepath.Join(dir, "link.ndjson")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	other := writeFile(t, "other.ndjson", in)
	t.Chdir(dir)
	convertArgs := []string{"convert", "--from", render.Spectrum, "--to", render.EdgeOne}
	filterArgs := []string{"filter", "--from", render.Spectrum, "--filter", `{"where":{"key":"Status","operator":"geq","value":0}}`}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"same path", append(convertArgs, "-o", file, file)},
		{"./x and x", append(convertArgs, "-o", "./same.ndjson", "same.ndjson")},
		{"x/../x", append(convertArgs, "-o", filepath.Join(dir, "..", filepath.Base(dir), "same.ndjson"), file)},
		{"symlink", append(convertArgs, "-o", link, other, file)},
		{"output first", append(convertArgs, other, "-o", file, other, link)},
		{"filter", append(filterArgs, "-o", file, file)},
	} {
		code, diag := runMain(t, nil, c.args...)
		if code != 2 || !strings.Contains(diag, "is the input") {
			t.Errorf("%s: exit %d, %q", c.name, code, diag)
		}
		if b, _ := os.ReadFile(file); !bytes.Equal(b, in) {
			t.Fatalf("%s: the input was changed (%d bytes of %d)", c.name, len(b), len(in))
		}
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, diag := runMain(t, f, append(convertArgs, "-o", file)...)
	if code != 2 || !strings.Contains(diag, "is the input (stdin)") {
		t.Errorf("stdin: exit %d, %q", code, diag)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, in) {
		t.Fatalf("stdin: the input was changed")
	}
	noTemp(t, dir)
}

// TestOutputLeftAsItWas: a usage error, or a --strict stop, leaves an
// existing -o file as it was and does not create a missing one; a run
// that reads all its input replaces the file, keeping its mode (and a
// symlink), and creates a new one 0640.
func TestOutputLeftAsItWas(t *testing.T) {
	in := corpus(t, render.Spectrum, render.Options{})
	file := writeFile(t, "in.ndjson", in)
	dir := filepath.Dir(file)
	bad := writeFile(t, "bad.ndjson", append([]byte("not a record\n"), in...))
	old := []byte("the old output\n")
	out := filepath.Join(dir, "out.ndjson")
	if err := os.WriteFile(out, old, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.ndjson")
	for _, c := range []struct {
		name  string
		code  int
		args  []string
		files []string // default: a good file
	}{
		{"--to nosuch", 2, []string{"convert", "--from", render.Spectrum, "--to", "nosuch"}, nil},
		{"--from nosuch", 2, []string{"convert", "--from", "nosuch", "--to", render.Spectrum}, nil},
		{"--fields", 2, []string{"convert", "--from", render.Spectrum, "--to", render.EdgeOne, "--fields", "Bogus"}, nil},
		{"--timestamp-format", 2, []string{"convert", "--from", render.Spectrum, "--to", render.EdgeOne, "--timestamp-format", "unix"}, nil},
		{"--output", 2, []string{"convert", "--from", render.Spectrum, "--to", render.EdgeOne, "--output", "xml"}, nil},
		{"filter --from ocsf", 2, []string{"filter", "--from", "ocsf", "--filter", `{"where":{"key":"status_id","operator":"eq","value":1}}`}, nil},
		{"--filter", 2, []string{"filter", "--from", render.Spectrum, "--filter", `{"where":{"key":"Nope","operator":"eq","value":1}}`}, nil},
		{"--strict", 1, []string{"convert", "--strict", "--from", render.Spectrum, "--to", render.EdgeOne}, []string{file, bad}},
	} {
		for _, o := range []string{out, missing} {
			files := c.files
			if files == nil {
				files = []string{file}
			}
			args := append(append(append([]string{}, c.args...), "-o", o), files...)
			code, diag := runMain(t, nil, args...)
			if code != c.code {
				t.Errorf("%s: exit %d, want %d: %q", c.name, code, c.code, diag)
			}
		}
		if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, old) {
			t.Fatalf("%s: -o file changed to %d bytes (%v)", c.name, len(b), err)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%s: created the -o file", c.name)
		}
		noTemp(t, dir)
	}

	// bad records are reported and the rest written
	link := filepath.Join(dir, "link.ndjson")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	code, diag := runMain(t, nil, "convert", "--from", render.Spectrum, "--to", render.Spectrum, "-o", link, bad)
	if b, _ := os.ReadFile(out); code != 1 || !bytes.Equal(b, in) {
		t.Fatalf("bad records: exit %d, %d bytes written (want %d): %q", code, len(b), len(in), diag)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink -o named was replaced: %v %v", st.Mode(), err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("replaced file is %v (%v), want its old mode 0600", st.Mode(), err)
	}
	code, diag = runMain(t, nil, "convert", "--from", render.Spectrum, "--to", render.Spectrum, "-o", missing, file)
	if b, _ := os.ReadFile(missing); code != 0 || !bytes.Equal(b, in) {
		t.Fatalf("new file: exit %d, %d bytes written: %q", code, len(b), diag)
	}
	if st, err := os.Stat(missing); err != nil || st.Mode().Perm()&^0o640 != 0 {
		t.Errorf("new -o file is %v (%v), want 0640", st.Mode(), err)
	}
	noTemp(t, dir)
}

// TestFieldsTrimmed: --fields "Status, ClientIP" (as typed in a shell,
// with a space after the comma) selects those two fields.
func TestFieldsTrimmed(t *testing.T) {
	in := writeFile(t, "in.ndjson", corpus(t, render.Spectrum, render.Options{}))
	var out, diag bytes.Buffer
	code := Main([]string{"convert", "--from", render.Spectrum, "--to", render.Spectrum, "--fields", "Status, ClientIP", in}, bytes.NewReader(nil), &out, &diag)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, diag.String())
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if !strings.HasPrefix(first, `{"Status":`) || !strings.Contains(first, `,"ClientIP":`) || strings.Count(first, `":`) != 2 {
		t.Fatalf("first record %q, want Status and ClientIP only", first)
	}
}
