package sink

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CheckWritable reports whether a file destination could open c.Path,
// without creating anything: an existing file must open for appending; a
// missing one needs its nearest existing parent to be a directory this
// process may create entries in. prism validate runs it so that a log path
// prism run could not open is found before the proxy is started.
func (c *Config) CheckWritable() error {
	if c.Type != TypeFile || c.Path == "" {
		return nil
	}
	f, err := os.OpenFile(c.Path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log file %s cannot be opened for writing: %w", c.Path, err)
	}
	dir := filepath.Dir(c.Path)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("log file %s cannot be created: %s is not a directory", c.Path, dir)
			}
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("log file %s cannot be created: directory %s: %w", c.Path, dir, err)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log file %s cannot be created: %w", c.Path, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("log file %s cannot be created: no existing parent directory", c.Path)
		}
		dir = parent
	}
}
