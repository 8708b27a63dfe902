package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// outFile is the file named by -o. A regular file is written to a
// temporary file in its directory and renamed over it when the run is
// done, so that a run that stops part way (or never starts) leaves the old
// file as it was. Anything else (a device, a FIFO: -o /dev/stdout) is
// written in place.
type outFile struct {
	f      *os.File
	target string // renamed over at commit; "" when f is the file itself
}

// checkOutput refuses an -o path that is one of the inputs (stdin
// included): the same file after following symlinks, however it is named.
func checkOutput(path string, c *Common) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil // created, or not replaced; errors are reported when opened
	}
	files := c.Files
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		var in os.FileInfo
		if name == "-" {
			f, ok := c.Stdin.(*os.File)
			if !ok || f == nil {
				continue
			}
			in, err = f.Stat()
			name = "(stdin)"
		} else {
			in, err = os.Stat(name)
		}
		if err == nil && os.SameFile(st, in) {
			return fmt.Errorf("-o %s is the input %s: write to another file", path, name)
		}
	}
	return nil
}

// createOutput opens the -o file: a new file is created 0640 (records hold
// client addresses, like the log files prism writes), an existing one
// keeps its permissions. A regular file is written to a temporary file
// beside it (os.CreateTemp), renamed over it by commit.
func createOutput(path string) (*outFile, error) {
	target := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		target = p // replace the file a symlink names, not the symlink
	}
	var mode fs.FileMode // of the file replaced; 0: a new file
	st, err := os.Stat(target)
	switch {
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return nil, err
		}
		return &outFile{f: f}, nil
	case err == nil:
		mode = st.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if mode == 0 {
		mode = 0o640
	}
	dir, base := filepath.Split(target)
	f, err := os.CreateTemp(dir, "."+base+".*.tmp") // 0600 until the Chmod
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("cannot write %s: %w", path, err)
	}
	return &outFile{f: f, target: target}, nil
}

// Write writes to the file.
func (o *outFile) Write(p []byte) (int, error) { return o.f.Write(p) }

// commit puts the output in place.
func (o *outFile) commit() error {
	if o.target == "" {
		return o.f.Close()
	}
	tmp := o.f.Name()
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, o.target)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// abort drops the output: the -o file is left as it was.
func (o *outFile) abort() {
	_ = o.f.Close()
	if o.target != "" {
		_ = os.Remove(o.f.Name())
	}
}
