package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// NginxStream runs nginx in the foreground with the stream module and the
// given stream{} body (servers, upstreams) until the test ends or Stop.
// waitAddr, when not "", is a TCP address it must listen on before this
// returns. Call it again with the same body to start the same origin after
// a Stop.
func NginxStream(t testing.TB, body, waitAddr string) *Process {
	t.Helper()
	nginx := Need(t, "nginx")
	mod := NeedFile(t, "/usr/lib/nginx/modules/ngx_stream_module.so", "nginx stream module")
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log stderr notice;
load_module %s;
events { worker_connections 256; }
stream {
%s
}
`, dir, mod, body)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, nginx, "-p", dir, "-c", cf, "-e", "stderr")
	if waitAddr != "" {
		p.WaitTCP(t, waitAddr, 10*time.Second)
	}
	return p
}
