package testpeer

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Dnsmasq runs dnsmasq in the foreground as a DNS server on 127.0.0.1:port
// (UDP and TCP; FreePort gives a port) until the test ends or Stop. It
// answers only what its rules say: each of addresses is an --address
// rule, "/name/ip" (or "/name/" for NXDOMAIN), and nothing is forwarded.
// It returns once dnsmasq serves TCP, which it binds after UDP. Call it
// again with the same port to bring the server back after a Stop.
func Dnsmasq(t testing.TB, port int, addresses ...string) *Process {
	t.Helper()
	bin := Need(t, "dnsmasq")
	args := []string{"-k", "-p" + strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--pid-file=" + filepath.Join(t.TempDir(), "dnsmasq.pid"), "--user=root", "--log-facility=-"}
	for _, a := range addresses {
		args = append(args, "--address="+a)
	}
	p := Start(t, bin, args...)
	p.WaitTCP(t, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	return p
}
