package config

import (
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
