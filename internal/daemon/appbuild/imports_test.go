package appbuild_test

import (
	"go/build"
	"strings"
	"testing"
)

const module = "github.com/prismproxy/prism/"

// The data path compiles against plain values only: no data-path package
// imports config, the log jobs or the renderers, directly or through
// another package (test files aside). appbuild is where config meets it.
func TestDataPathImportsNoConfig(t *testing.T) {
	dataPath := []string{"proxy", "udpproxy", "relay", "tlsedge", "origin", "firewall", "geo", "limit", "spp", "event", "netspec"}
	forbidden := map[string]bool{module + "internal/config": true, module + "internal/logjob": true, module + "internal/render": true}
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
			pkg, err := build.Import(path, "", 0)
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
