package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CheckWritable reports whether Open could use c.Dir, without creating
// anything: an existing directory must let this process create files in
// it; a missing one needs its nearest existing parent to be such a
// directory. prism validate runs it, as it checks log file paths.
func (c *Config) CheckWritable() error {
	if !c.Enabled() {
		return nil
	}
	for dir := c.Dir; ; {
		st, err := os.Stat(dir)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("spool directory %s cannot be created: %s is not a directory", c.Dir, dir)
		case err == nil:
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("spool directory %s cannot be used: directory %s: %w", c.Dir, dir, err)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("spool directory %s: %w", c.Dir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("spool directory %s cannot be created: no existing parent directory", c.Dir)
		}
		dir = parent
	}
}
