package spool

import (
	"fmt"

	"github.com/prismproxy/prism/internal/sink"
)

// CheckWritable reports whether Open could use c.Dir, without creating
// anything: an existing directory must let this process create files in
// it; a missing one needs its nearest existing parent to be such a
// directory. prism validate runs it, as it checks log file paths.
func (c *Config) CheckWritable() error {
	if !c.Enabled() {
		return nil
	}
	if err := sink.CheckCreatable(c.Dir); err != nil {
		return fmt.Errorf("spool directory %s cannot be used: %w", c.Dir, err)
	}
	return nil
}
