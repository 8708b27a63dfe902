package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// echo sends what to a serve of its own and returns the first n bytes
// echoed back, failing if they take more than five seconds.
func echo(t *testing.T, what []byte, n int) string {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go serve(server)
	if err := client.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = client.Write(what) }()
	buf := make([]byte, n)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatalf("echo of %q: %v (after %q)", what, err, buf)
	}
	return string(buf)
}

// TestEchoWithoutHeader: bytes that start like a header ("PROX", "\r\n")
// but are not one are echoed at once, the client waiting for its echo.
// (Bytes that are all a header's beginning, "PRO" alone, wait for more.)
func TestEchoWithoutHeader(t *testing.T) {
	for _, s := range []string{"PING\n", "PROX\n", "PROXY\n", "\r\n\r\nhi\n", "hello\n"} {
		if got := echo(t, []byte(s), len(s)); got != s {
			t.Errorf("echo of %q = %q", s, got)
		}
	}
}

// TestEchoAfterHeader: a v1 or v2 header is read, and only what follows
// it echoed.
func TestEchoAfterHeader(t *testing.T) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	dst := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000}
	for _, v := range []byte{1, 2} {
		hdr, err := proxyproto.HeaderProxyFromAddrs(v, src, dst).Format()
		if err != nil {
			t.Fatal(err)
		}
		if got := echo(t, append(hdr, "PING\n"...), 5); got != "PING\n" {
			t.Errorf("v%d: echo %q, want %q", v, got, "PING\n")
		}
	}
}

func TestHasHeader(t *testing.T) {
	for s, want := range map[string]bool{
		"PROXY TCP4 192.0.2.1 127.0.0.1 4000 9000\r\n": true,
		string(proxyproto.SIGV2) + "\x21\x11\x00\x0c":  true,
		"PROXY":   false, // then EOF
		"PROXYZ ": false,
		"PING\n":  false,
		"":        false,
	} {
		if got := hasHeader(bufio.NewReader(strings.NewReader(s))); got != want {
			t.Errorf("hasHeader(%q) = %v, want %v", s, got, want)
		}
	}
}
