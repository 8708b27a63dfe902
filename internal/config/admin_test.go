package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminSection(t *testing.T) {
	const app = "apps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"
	cfg, err := Parse("ok.yaml", []byte("node: {colo: X}\nadmin: {listen: \"127.0.0.1:9901\"}\n"+app))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Admin.Enabled() || cfg.Admin.Listen != "127.0.0.1:9901" {
		t.Fatalf("admin: %+v", cfg.Admin)
	}
	cfg, err = Parse("off.yaml", []byte("node: {colo: X}\n"+app))
	if err != nil || cfg.Admin.Enabled() {
		t.Fatalf("no admin section: %+v %v", cfg, err)
	}
	_, err = Parse("bad.yaml", []byte("node: {colo: X}\nadmin:\n  listen: \"0.0.0.0:9901\"\n"+app))
	if err == nil || !strings.Contains(err.Error(), `bad.yaml:3: admin.listen: "0.0.0.0:9901" is not a loopback address: a public admin listener needs token, token_file or tls.client_ca`) {
		t.Fatalf("public bind without a token: %v", err)
	}
	_, err = Parse("bad.yaml", []byte("node: {colo: X}\nadmin:\n  listen: \"127.0.0.1:9901\"\n  token: abc\n"+app))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:4: admin.token: too short") {
		t.Fatalf("short token: %v", err)
	}
}

// LoadFileOnly (prism reload, prism upgrade) reads no file the config
// names: a token file and a list file it cannot read are not problems
// there, a token file counts as a token for a public admin listener, and
// every other check is Load's. Load reads both and names them.
func TestLoadFileOnlyReadsNoNamedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prism.yaml")
	write := func(admin string) {
		t.Helper()
		y := "node: {colo: X}\nadmin: {" + admin + "}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n" +
			"    ip_firewall: {lists: [{action: block, path: " + filepath.Join(dir, "missing.txt") + "}]}\n"
		if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`listen: "0.0.0.0:9901", token_file: ` + dir) // a directory: no token can be read from it
	if _, err := LoadFileOnly(path); err != nil {
		t.Errorf("LoadFileOnly: %v", err)
	}
	_, err := Load(path)
	for _, want := range []string{path + ":2: admin.token_file: ", path + ":7: apps[0].ip_firewall.lists[0].path: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load: %v; want %q", err, want)
		}
	}
	write(`listen: "127.0.0.1:9901", token: 0123456789abcdef, token_file: ` + dir)
	if _, err := LoadFileOnly(path); err == nil || !strings.Contains(err.Error(), path+":2: admin.token_file: give token or token_file, not both") {
		t.Errorf("LoadFileOnly of token and token_file: %v", err)
	}
}
