package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNoSocketIsANoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Ready("up"); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: sent %v, err %v", sent, err)
	}
}

func TestMessagesReachTheSocket(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "notify")
		env := path
		if abstract {
			path = "\x00prism-sdnotify-test-" + filepath.Base(t.TempDir())
			env = "@" + path[1:]
		}
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", env)
		read := func() string {
			buf := make([]byte, 512)
			_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := ln.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			return string(buf[:n])
		}
		if sent, err := Ready("serving 2 apps"); !sent || err != nil {
			t.Fatalf("Ready: sent %v, err %v", sent, err)
		}
		if got := read(); got != "READY=1\nSTATUS=serving 2 apps\n" {
			t.Errorf("Ready wrote %q", got)
		}
		if _, err := Reloading(); err != nil {
			t.Fatal(err)
		}
		if got := read(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(got, "=0\n") {
			t.Errorf("Reloading wrote %q", got)
		}
		if _, err := Stopping("draining"); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != "STOPPING=1\nSTATUS=draining\n" {
			t.Errorf("Stopping wrote %q", got)
		}
		ln.Close()
	}
}
