package netspec

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseListen(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Listen
		err  string
	}{
		{in: "127.0.0.1:8000", want: Listen{Raw: "127.0.0.1:8000", Host: "127.0.0.1", Lo: 8000, Hi: 8000}},
		{in: ":9000-9002", want: Listen{Raw: ":9000-9002", Lo: 9000, Hi: 9002}},
		{in: "[::1]:0", want: Listen{Raw: "[::1]:0", Host: "::1"}},
		{in: "localhost:53", want: Listen{Raw: "localhost:53", Host: "localhost", Lo: 53, Hi: 53}},
		{in: "unix:/run/p.sock", want: Listen{Raw: "unix:/run/p.sock", Path: "/run/p.sock"}},
		{in: "unix:", err: "empty unix socket path"},
		{in: "8000", err: "bad listen address"},
		{in: "example.com:80", err: "use an IP address"},
		{in: ":1-5000", err: "wider than 4096 ports"},
		{in: ":9-1", err: "bad port range"},
		{in: ":x", err: "bad port"},
	} {
		got, err := ParseListen(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseListen(%q) = %v, want error containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseListen(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestListenKeys(t *testing.T) {
	var specs []Listen
	for _, s := range []string{"127.0.0.1:80-81", ":0", "unix:/run/x.sock", "[::1]:53"} {
		l, err := ParseListen(s)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, l)
	}
	got := ListenKeys("tcp", specs)
	want := []string{"tcp 127.0.0.1:80", "tcp 127.0.0.1:81", "unix /run/x.sock", "tcp [::1]:53"}
	if !slices.Equal(got, want) {
		t.Errorf("ListenKeys = %q, want %q (no key for the ephemeral port)", got, want)
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3/8":  "10.0.0.0/8",
		"192.0.2.7":   "192.0.2.7/32",
		"2001:db8::1": "2001:db8::1/128",
		"::/0":        "::/0",
	} {
		got, err := ParsePrefix(in)
		if err != nil || got != netip.MustParsePrefix(want) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "host", "1.2.3"} {
		if p, err := ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", in, p)
		}
	}
}
