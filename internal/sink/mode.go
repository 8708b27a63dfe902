package sink

import (
	"fmt"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// DefaultFileMode is the permission of a log file prism creates: records
// hold client addresses, so they are not world-readable. Directories
// prism creates for a log file get the same bits plus search (x) where
// read is allowed: 0750 for 0640.
const DefaultFileMode FileMode = 0o640

// FileMode is a file permission written in octal ("0640", 0640 or "640").
type FileMode os.FileMode

// UnmarshalYAML reads the scalar's text as octal, so that 0640 means what
// chmod means by it whatever the YAML version's integer rules.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: mode must be an octal permission such as \"0640\"", n.Line)
	}
	s := n.Value
	if len(s) > 2 && (s[:2] == "0o" || s[:2] == "0O") {
		s = s[2:]
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return fmt.Errorf("line %d: mode %q is not an octal permission between 0000 and 0777", n.Line, n.Value)
	}
	*m = FileMode(v)
	return nil
}

func (m FileMode) String() string { return fmt.Sprintf("%#o", uint32(m)) }

// dirMode is the mode of a directory made for a file of mode m.
func (m FileMode) dirMode() os.FileMode {
	d := os.FileMode(m)
	d |= (d & 0o444) >> 2 // x where r
	return d | 0o700
}
