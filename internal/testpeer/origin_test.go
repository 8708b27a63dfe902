package testpeer

import (
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestEchoSinkClosedPort(t *testing.T) {
	c, err := net.Dial("tcp", Echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo %q: %v", b, err)
	}
	s, err := net.Dial("tcp", Sink(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _ = s.Write([]byte("x"))
	_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := s.Read(b); n != 0 || err == io.EOF {
		t.Fatalf("sink wrote %d bytes or closed: %v", n, err)
	}
	if c, err := net.Dial("tcp", ClosedPort(t)); err == nil {
		c.Close()
		t.Fatal("dialled the closed port")
	}
}

func TestUDPEcho(t *testing.T) {
	o := StartUDPEcho(t, "re:")
	q := QuietUDPEcho(t)
	for to, want := range map[string]string{o.Addr().String(): "re:hi", q.String(): "hi"} {
		c, err := net.Dial("udp", to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, err := c.Read(b)
		if err != nil || string(b[:n]) != want {
			t.Fatalf("%s replied %q (%v), want %q", to, b[:n], err, want)
		}
	}
	if got := <-o.Got; string(got) != "hi" {
		t.Fatalf("Got %q", got)
	}
}

func TestEchoUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	EchoUnix(t, path)
	for range 2 { // every connection, not only the first
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo %q: %v", b, err)
		}
		c.Close()
	}
}
