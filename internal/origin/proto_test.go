package origin

import "testing"

func TestPoolProto(t *testing.T) {
	for _, tc := range []struct {
		cfg       Config
		transport string
		want      string
	}{
		{Config{Addresses: []string{"unix:/run/a.sock"}}, "tcp", "unix"},
		{Config{Addresses: []string{"unix:/run/a.sock", "unix:/run/b.sock"}}, "udp", "unix"},
		{Config{Addresses: []string{"unix:/run/a.sock", "127.0.0.1:80"}}, "tcp", "tcp"},
		{Config{Addresses: []string{"127.0.0.1:53"}}, "udp", "udp"},
		{Config{DNS: &DNSConfig{Name: "origin.test", Port: "443"}}, "tcp", "tcp"},
	} {
		p, err := NewPool(prepared(t, tc.cfg), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Proto(tc.transport); got != tc.want {
			t.Errorf("%+v (%s app): Proto %q, want %q", tc.cfg, tc.transport, got, tc.want)
		}
	}
}
