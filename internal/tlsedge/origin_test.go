package tlsedge

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// startSServer runs `openssl s_server -www` with the given certificate and
// returns its address.
func startSServer(t *testing.T, c tlstest.Issued) netip.AddrPort {
	t.Helper()
	return netip.MustParseAddrPort(testpeer.OpenSSLServer(t, c.CertFile, c.KeyFile))
}

// startNginxTLS runs nginx as an HTTPS origin answering "nginx-origin".
// With clientCA set it requires a client certificate signed by it.
func startNginxTLS(t *testing.T, c tlstest.Issued, clientCA string) netip.AddrPort {
	t.Helper()
	return netip.MustParseAddrPort(testpeer.NginxHTTPS(t, c.CertFile, c.KeyFile, clientCA))
}

// dialOrigin dials addr and runs DialTLS with a fresh event.
func dialOrigin(t *testing.T, e *Edge, addr netip.AddrPort, prep func(*event.Event)) (*event.Event, net.Conn, error) {
	t.Helper()
	raw, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	ev := event.New("app", event.NewID(time.Now()))
	ev.OriginAddr = addr
	if prep != nil {
		prep(&ev)
	}
	tc, err := e.DialTLS(context.Background(), raw, &ev)
	if err != nil {
		raw.Close()
		return &ev, nil, err
	}
	t.Cleanup(func() { tc.Close() })
	return &ev, tc, nil
}

func httpGet(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: origin.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		t.Fatalf("read response: %v", err)
	}
	return string(b)
}

// TestDialTLSOpenSSLServer checks full and strict against openssl s_server
// origins: right CA, wrong CA, expired certificate, name mismatch.
func TestDialTLSOpenSSLServer(t *testing.T) {
	ca := tlstest.NewCA(t, "origin CA")
	other := tlstest.NewCA(t, "some other CA")
	good := ca.Issue(t, tlstest.Leaf{Names: []string{"origin.example"}})
	expired := ca.Issue(t, tlstest.Leaf{Names: []string{"origin.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	goodAddr := startSServer(t, good)
	expiredAddr := startSServer(t, expired)
	edgeCert := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	certs := []CertFile{{edgeCert.CertFile, edgeCert.KeyFile}}

	tests := []struct {
		name     string
		mode     string
		caFile   string
		sn       string
		addr     netip.AddrPort
		leaf     tlstest.Issued
		prep     func(*event.Event)
		ok       bool
		wantErr  string
		wantSNI  string
		wantStat string
	}{
		{name: "strict, right CA", mode: ModeStrict, caFile: ca.CAFile, sn: "origin.example", addr: goodAddr, leaf: good, ok: true},
		{name: "strict, wrong CA", mode: ModeStrict, caFile: other.CAFile, sn: "origin.example", addr: goodAddr, leaf: good,
			wantErr: "certificate signed by unknown authority"},
		{name: "full, wrong CA is not checked", mode: ModeFull, sn: "origin.example", addr: goodAddr, leaf: good, ok: true},
		{name: "strict, expired", mode: ModeStrict, caFile: ca.CAFile, sn: "origin.example", addr: expiredAddr, leaf: expired,
			wantErr: "expired"},
		{name: "full, expired passes", mode: ModeFull, sn: "origin.example", addr: expiredAddr, leaf: expired, ok: true},
		{name: "strict, name mismatch", mode: ModeStrict, caFile: ca.CAFile, sn: "other.example", addr: goodAddr, leaf: good,
			wantErr: "not other.example", wantSNI: "other.example"},
		{name: "strict, name from the origin DNS name", mode: ModeStrict, caFile: ca.CAFile, addr: goodAddr, leaf: good, ok: true,
			prep: func(ev *event.Event) { ev.OriginName = "origin.example"; ev.ClientTLS.ServerName = "client.example" }},
		{name: "strict, name from the client SNI", mode: ModeStrict, caFile: ca.CAFile, addr: goodAddr, leaf: good, ok: true,
			prep: func(ev *event.Event) { ev.ClientTLS.ServerName = "origin.example" }},
		{name: "strict, IP origin verified against IP SANs", mode: ModeStrict, caFile: ca.CAFile, addr: goodAddr, leaf: good,
			wantErr: "doesn't contain any IP SANs", wantSNI: "-"},
		{name: "strict, CA file missing", mode: ModeStrict, caFile: "/nonexistent/ca.pem", sn: "origin.example", addr: goodAddr,
			wantErr: "not loaded", wantStat: StatusInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mustEdge(t, Config{Mode: tc.mode, Certificates: certs,
				Origin: OriginConfig{ServerName: tc.sn, CAFile: tc.caFile}})
			ev, conn, err := dialOrigin(t, e, tc.addr, tc.prep)
			wantSNI := tc.sn
			if tc.prep != nil && tc.sn == "" {
				wantSNI = "origin.example"
			}
			if tc.wantSNI != "" {
				wantSNI = strings.TrimPrefix(tc.wantSNI, "-")
			}
			if ev.OriginTLS.ServerName != wantSNI {
				t.Errorf("OriginTLS.ServerName %q, want %q", ev.OriginTLS.ServerName, wantSNI)
			}
			if ev.TLSMode != tc.mode {
				t.Errorf("TLSMode %q", ev.TLSMode)
			}
			if !tc.ok {
				if err == nil {
					t.Fatalf("handshake succeeded; OriginTLS %+v", ev.OriginTLS)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not mention %q", err, tc.wantErr)
				}
				want := tc.wantStat
				if want == "" {
					want = StatusHandshakeFailed
				}
				if ev.OriginTLS.Status != want || ev.OriginTLS.Protocol != "unknown" || ev.OriginTLS.Cipher != "UNK" {
					t.Errorf("OriginTLS %+v, want status %s, protocol unknown, cipher UNK", ev.OriginTLS, want)
				}
				// A certificate that was presented but rejected is still identified.
				if tc.leaf.Leaf != nil && ev.OriginTLS.Fingerprint != tc.leaf.Fingerprint() {
					t.Errorf("fingerprint %q, want %q", ev.OriginTLS.Fingerprint, tc.leaf.Fingerprint())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.OriginTLS.Status != "OK" || ev.OriginTLS.Protocol != "TLSv1.3" || !strings.HasPrefix(ev.OriginTLS.Cipher, "AEAD-") {
				t.Errorf("OriginTLS %+v", ev.OriginTLS)
			}
			if ev.OriginTLS.Fingerprint != tc.leaf.Fingerprint() {
				t.Errorf("fingerprint %q, want %q", ev.OriginTLS.Fingerprint, tc.leaf.Fingerprint())
			}
			if resp := httpGet(t, conn); !strings.Contains(resp, "200 ok") {
				t.Errorf("s_server response: %.200q", resp)
			}
		})
	}
}

// TestDialTLSNginx: nginx (ssl) as a strict origin, with and without a
// required client certificate, and at TLS 1.2 only.
func TestDialTLSNginx(t *testing.T) {
	ca := tlstest.NewCA(t, "origin CA")
	originCert := ca.Issue(t, tlstest.Leaf{Names: []string{"origin.example"}, KeyType: tlstest.RSA})
	clientCert := ca.Issue(t, tlstest.Leaf{Names: []string{"edge-client"}})
	edgeCert := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	certs := []CertFile{{edgeCert.CertFile, edgeCert.KeyFile}}

	open := startNginxTLS(t, originCert, "")
	mtls := startNginxTLS(t, originCert, ca.CAFile)

	e, _ := mustEdge(t, Config{Mode: ModeStrict, Certificates: certs,
		Origin: OriginConfig{ServerName: "origin.example", CAFile: ca.CAFile}})
	ev, conn, err := dialOrigin(t, e, open, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OriginTLS.Status != "OK" || ev.OriginTLS.Protocol != "TLSv1.3" || ev.OriginTLS.Fingerprint != originCert.Fingerprint() {
		t.Errorf("OriginTLS %+v", ev.OriginTLS)
	}
	if resp := httpGet(t, conn); !strings.HasSuffix(resp, "nginx-origin") {
		t.Errorf("nginx response %q", resp)
	}

	// Without a client certificate nginx answers 400.
	_, conn, err = dialOrigin(t, e, mtls, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp := httpGet(t, conn); !strings.Contains(resp, "400") {
		t.Errorf("nginx without client cert: %.120q", resp)
	}
	withCert, _ := mustEdge(t, Config{Mode: ModeStrict, Certificates: certs,
		Origin: OriginConfig{ServerName: "origin.example", CAFile: ca.CAFile, Cert: clientCert.CertFile, Key: clientCert.KeyFile}})
	_, conn, err = dialOrigin(t, withCert, mtls, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp := httpGet(t, conn); !strings.HasSuffix(resp, "nginx-origin") {
		t.Errorf("nginx with client cert: %.120q", resp)
	}

	// The TLS 1.2 cipher name as nginx/OpenSSL negotiated it.
	tls12, _ := mustEdge(t, Config{Mode: ModeFull, Certificates: certs,
		Origin: OriginConfig{ServerName: "origin.example"}})
	tls12.originConf.MaxVersion = 0x0303
	ev, _, err = dialOrigin(t, tls12, open, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OriginTLS.Protocol != "TLSv1.2" || ev.OriginTLS.Cipher != "ECDHE-RSA-AES128-GCM-SHA256" {
		t.Errorf("TLS 1.2 OriginTLS %+v", ev.OriginTLS)
	}
}

// TestDialTLSWrongMode: DialTLS in a mode without origin TLS is an internal error.
func TestDialTLSWrongMode(t *testing.T) {
	ca := tlstest.NewCA(t, "CA")
	c := ca.Issue(t, tlstest.Leaf{Names: []string{"a.example"}})
	e, _ := mustEdge(t, Config{Mode: ModeFlexible, Certificates: []CertFile{{c.CertFile, c.KeyFile}}})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ev := event.New("app", event.ID{})
	if _, err := e.DialTLS(context.Background(), a, &ev); err == nil || ev.OriginTLS.Status != StatusInternalError {
		t.Fatalf("err %v, OriginTLS %+v", err, ev.OriginTLS)
	}
}
