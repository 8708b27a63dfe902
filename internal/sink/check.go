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
	if err := CheckCreatable(filepath.Dir(c.Path)); err != nil {
		return fmt.Errorf("log file %s cannot be created: %w", c.Path, err)
	}
	return nil
}

// CheckCreatable reports whether this process could create dir (if
// missing) and files in it, without creating anything: the nearest
// existing of dir and its parents must be a directory it may create
// entries in. Log file and spool directory checks share it.
func CheckCreatable(dir string) error {
	for {
		st, err := os.Stat(dir)
		switch {
		case err == nil && !st.IsDir():
			return fmt.Errorf("%s is not a directory", dir)
		case err == nil:
			if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("directory %s: %w", dir, err)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return errors.New("no existing parent directory")
		}
		dir = parent
	}
}
