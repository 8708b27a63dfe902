package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// NginxHTTPS runs nginx in the foreground as an HTTPS origin on a fresh
// loopback port, answering every request with "nginx-origin", until the
// test ends, and returns its address. certFile and keyFile are its
// certificate; with clientCA set it requires a client certificate signed
// by it.
func NginxHTTPS(t testing.TB, certFile, keyFile, clientCA string) string {
	t.Helper()
	nginx := Need(t, "nginx")
	dir := t.TempDir()
	port := FreePort(t)
	verify := ""
	if clientCA != "" {
		verify = fmt.Sprintf("ssl_client_certificate %s; ssl_verify_client on;", clientCA)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    %[5]s
    location / { return 200 "nginx-origin"; }
  }
}
`, dir, port, certFile, keyFile, verify)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	Start(t, nginx, "-p", dir, "-c", cf, "-e", "stderr").WaitTCP(t, addr, 10*time.Second)
	return addr
}

// OpenSSLServer runs `openssl s_server -www` on a fresh loopback port with
// the certificate in certFile and keyFile until the test ends, and returns
// its address.
func OpenSSLServer(t testing.TB, certFile, keyFile string) string {
	t.Helper()
	openssl := Need(t, "openssl")
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	Start(t, openssl, "s_server", "-accept", addr, "-cert", certFile, "-key", keyFile, "-www", "-quiet").WaitTCP(t, addr, 10*time.Second)
	return addr
}
