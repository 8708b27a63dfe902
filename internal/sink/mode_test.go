package sink

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/cfgerr"
)

// TestFileModes: log files hold client addresses; they were created 0644
// and their directories 0755. Now 0640 and 0750 by default, or what mode
// says (rotated and compressed copies too).
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		mode      FileMode
		file, dir os.FileMode
	}{
		{0, 0o640, 0o750},
		{0o600, 0o600, 0o700},
		{0o644, 0o644, 0o755},
	} {
		dir := filepath.Join(t.TempDir(), "a", "b")
		c := Config{Type: TypeFile, Path: filepath.Join(dir, "x.log"), Mode: tc.mode, Compress: true}
		if err := cfgerr.Prepare(&c); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Write(batch("", "r1")); err != nil {
			t.Fatal(err)
		}
		if err := f.Rotate(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil { // waits for compression
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 2 {
			t.Fatalf("%v: %d files", tc.mode, len(ents))
		}
		for _, e := range ents {
			st, _ := os.Stat(filepath.Join(dir, e.Name()))
			if st.Mode().Perm() != tc.file {
				t.Errorf("mode %v: %s is %v, want %v", tc.mode, e.Name(), st.Mode().Perm(), tc.file)
			}
		}
		for _, d := range []string{dir, filepath.Dir(dir)} {
			st, _ := os.Stat(d)
			if st.Mode().Perm() != tc.dir {
				t.Errorf("mode %v: directory %s is %v, want %v", tc.mode, d, st.Mode().Perm(), tc.dir)
			}
		}
	}
}

func TestModeAndPathValidation(t *testing.T) {
	for _, tc := range []struct {
		c   Config
		key string
	}{
		{Config{Type: TypeFile, Path: "logs/x.log"}, "path"},
		{Config{Type: TypeFile, Path: "./x.log"}, "path"},
		{Config{Type: TypeFile, Path: "/var/log/x.log", Mode: 0o666}, "mode"},
	} {
		errs := tc.c.Validate()
		if len(errs) != 1 || errs[0].Key != tc.key {
			t.Errorf("%+v: %v, want one error on %s", tc.c, errs, tc.key)
		}
	}
	for _, s := range []string{"0640", `"0640"`, "640", "0o640"} {
		var c Config
		if err := yaml.Unmarshal([]byte("mode: "+s), &c); err != nil || c.Mode != 0o640 {
			t.Errorf("mode: %s → %v, %v", s, c.Mode, err)
		}
	}
	for _, s := range []string{"0980", "1777", "rw-r-----", "[1]"} {
		var c Config
		if err := yaml.Unmarshal([]byte("mode: "+s), &c); err == nil || !strings.Contains(err.Error(), "mode") {
			t.Errorf("mode: %s accepted (%v)", s, c.Mode)
		}
	}
}
