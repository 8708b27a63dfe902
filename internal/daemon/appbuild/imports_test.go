package appbuild_test

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/prismproxy/prism/"

// root is the module's directory: go test runs a test in its package's.
const root = "../../.."

// The data path compiles against plain values only: no data-path package
// imports config, the log jobs or the renderers, directly or through
// another package (test files aside). appbuild is where config meets it.
func TestDataPathImportsNoConfig(t *testing.T) {
	dataPath := []string{"proxy", "udpproxy", "relay", "tlsedge", "origin", "firewall", "geo", "limit", "spp", "event", "netspec"}
	forbidden := map[string]bool{module + "internal/config": true, module + "internal/logjob": true, module + "internal/render": true}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module "+strings.TrimSuffix(module, "/")+"\n") {
		t.Fatalf("%s is not the module's directory: go.mod %v", root, err)
	}
	for _, p := range dataPath {
		seen := map[string]bool{}
		var walk func(path string, via []string)
		walk = func(path string, via []string) {
			if seen[path] {
				return
			}
			seen[path] = true
			if forbidden[path] {
				t.Errorf("%s imports %s", strings.Join(via, " → "), strings.TrimPrefix(path, module))
				return
			}
			// A package of the module is read from its directory:
			// build.Import would ask `go list` where it is, a process
			// per package (seconds for the whole walk).
			pkg, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(path, module)), 0)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			for _, imp := range pkg.Imports {
				if strings.HasPrefix(imp, module) {
					walk(imp, append(via, strings.TrimPrefix(path, module)))
				}
			}
		}
		walk(module+"internal/"+p, nil)
	}
}
