package proxy_test

// The established-connection codes that only a misbehaving network
// produces — 445/446/447 on the origin leg, 497/496/495 on the client leg
// — made by the kernel itself: in a network namespace of the test's own,
// net.ipv4.tcp_retries2 is lowered so that retransmissions give up within
// seconds, and iptables on that namespace's loopback drops the packets
// towards one leg (ETIMEDOUT) or rejects them with an ICMP host or port
// unreachable (EHOSTUNREACH, ECONNREFUSED: Linux keeps such an ICMP as the
// socket's soft error and reports it when the retransmissions give up).

import (
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/testpeer"
)

func TestEstablishedKernelErrors(t *testing.T) {
	if !testpeer.InNetNS(t) {
		return
	}
	iptables := testpeer.Need(t, "iptables")
	// Retransmissions give up after about 1.4 s on loopback (RTO 200 ms,
	// doubled twice) instead of the default 15 retries (minutes).
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_retries2", []byte("2"), 0o644); err != nil {
		t.Fatalf("lower tcp_retries2 in the test's namespace: %v", err)
	}
	if out, err := exec.Command(iptables, "-w", "-L", "INPUT", "-n").CombinedOutput(); err != nil {
		if testpeer.InCI() {
			t.Fatalf("iptables does not work in this namespace (%v): %s", err, out)
		}
		t.Skipf("iptables does not work in this namespace (%v): %s", err, out)
	}

	for _, tc := range []struct {
		name   string
		leg    event.Side
		target []string // iptables target for packets towards that leg
		status int
		eo, cc string // EdgeOne DisconnetReason, CloudConnexa sessionDisconnectReason
	}{
		{"origin ETIMEDOUT", event.SideOrigin, []string{"DROP"}, event.StatusOriginTimeout, "up:net_exception_timeout", "Timeout"},
		{"origin EHOSTUNREACH", event.SideOrigin, []string{"REJECT", "--reject-with", "icmp-host-unreachable"}, event.StatusOriginUnreachable, "up:net_exception_peer_error", "Origin Connection Error"},
		{"origin ECONNREFUSED", event.SideOrigin, []string{"REJECT", "--reject-with", "icmp-port-unreachable"}, event.StatusOriginRefused, "up:net_exception_peer_error", "Origin Connection Error"},
		{"client ETIMEDOUT", event.SideClient, []string{"DROP"}, event.StatusClientTimeout, "down:net_exception_timeout", "Timeout"},
		{"client EHOSTUNREACH", event.SideClient, []string{"REJECT", "--reject-with", "icmp-host-unreachable"}, event.StatusClientUnreachable, "down:net_exception_peer_error", "Client Connection Error"},
		{"client ECONNREFUSED", event.SideClient, []string{"REJECT", "--reject-with", "icmp-port-unreachable"}, event.StatusClientRefused, "down:net_exception_peer_error", "Client Connection Error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// An origin and an app per case: a rule on one port hits one case.
			// An echo origin whose connections the test closes at its end:
			// a leg cut off by the rule would otherwise wait for keepalive.
			done := make(chan struct{})
			origin := testpeer.Serve(t, func(c net.Conn) {
				go func() { <-done; c.Close() }()
				_, _ = io.Copy(c, c)
			})
			t.Cleanup(func() { close(done) })
			_, originPort := hostPort(t, origin)
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`))
			c := dial(t, addr)
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			echo := func(b string) {
				t.Helper()
				if _, err := c.Write([]byte(b)); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(b))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != b {
					t.Fatalf("echo %q: %q %v", b, got, err)
				}
			}
			echo("up")
			conn := rec.Expect(t, event.Connect, 0)

			// Packets towards the leg: to the origin's port, or to the
			// client's.
			port := originPort
			if tc.leg == event.SideClient {
				port = int(conn.ClientAddr.Port())
			}
			rule := append([]string{"INPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", strconv.Itoa(port), "-j"}, tc.target...)
			if out, err := exec.Command(iptables, append([]string{"-w", "-A"}, rule...)...).CombinedOutput(); err != nil {
				t.Fatalf("iptables -A %v: %v\n%s", rule, err, out)
			}
			t.Cleanup(func() { _ = exec.Command(iptables, append([]string{"-w", "-D"}, rule...)...).Run() })

			// One more byte each way has to cross the blocked leg.
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			blocked := time.Now()
			e := rec.Terminal(t)
			t.Logf("%s %d after %v: %s", e.Type, e.Status, time.Since(blocked).Round(time.Millisecond), e.Detail)
			if e.Type != event.Disconnect || e.Status != tc.status || e.CloseSide != tc.leg {
				t.Fatalf("got %s %d on the %s leg (%s), want disconnect %d on the %s leg", e.Type, e.Status, e.CloseSide, e.Detail, tc.status, tc.leg)
			}
			wantRecords(t, &e, map[string]map[string]any{
				render.Spectrum:     {"Event": "disconnect", "Status": tc.status, "ClientTcpRtt": "<nonzero>", "OriginProto": "tcp"},
				render.EdgeOne:      {"DisconnetReason": tc.eo},
				render.CloudConnexa: {"eventName": "client-disconnected", "log.sessionDisconnectReason": tc.cc},
			})
		})
	}
}
