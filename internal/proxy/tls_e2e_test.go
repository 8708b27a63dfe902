package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/relay"
	"github.com/prismproxy/prism/internal/testpeer"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestTLSFlexibleOpenSSL: s_client → prism (flexible) → plaintext echo.
// The connect and disconnect records carry every client TLS field, and the
// origin leg says none.
func TestTLSFlexibleOpenSSL(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	origin := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"tls: {mode: flexible, certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]}"))

	// s_client sends stdin, and closes at its EOF (no -quiet: that implies -ign_eof).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-servername", "edge.example", "-tls1_2",
		"-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-CAfile", ca.CAFile, "-verify_return_error")
	cmd.Stdin = strings.NewReader("ping\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verify return code: 0 (ok)") {
		t.Fatalf("s_client: %v\n%s", err, out)
	}
	c := rec.Expect(t, event.Connect, event.StatusConnect)
	want := map[string]any{"Event": "connect", "Status": 0, "OriginTlsMode": "flexible",
		"ClientTlsProtocol": "TLSv1.2", "ClientTlsCipher": "ECDHE-ECDSA-AES128-GCM-SHA256", "ClientTlsStatus": "OK",
		"ClientTlsClientHelloServerName": "edge.example",
		"OriginTlsProtocol":              "none", "OriginTlsCipher": "UNK", "OriginTlsStatus": "UNKNOWN", "OriginTlsFingerprint": ""}
	wantSpectrum(t, &c, want)
	d := rec.Terminal(t)
	want["Event"], want["Status"] = "disconnect", 200
	wantSpectrum(t, &d, want)
	if d.ClientBytes != 5 {
		t.Errorf("ClientBytes %d, want the 5 plaintext bytes s_client sent", d.ClientBytes)
	}
}

// TestTLSStrictNginx: curl → prism (strict) → nginx (ssl). Both legs and
// the origin certificate's fingerprint are in the records; a wrong CA is
// originError 520 HANDSHAKE_FAILED with the refused certificate identified.
func TestTLSStrictNginx(t *testing.T) {
	curl := testpeer.Need(t, "curl")
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	originLeaf := ca.Issue(t, tlstest.Leaf{Names: []string{"origin.example"}})
	fp := originLeaf.Fingerprint()
	origin := testpeer.NginxHTTPS(t, originLeaf.CertFile, originLeaf.KeyFile, "")
	other := tlstest.NewCA(t, "prism e2e CA")

	for _, tc := range []struct {
		name   string
		caFile string
		ok     bool
	}{{"right CA", ca.CAFile, true}, {"wrong CA", other.CAFile, false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
				"tls:",
				"  mode: strict",
				"  certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]",
				"  origin: {server_name: origin.example, ca_file: "+tc.caFile+"}"))
			_, port, _ := net.SplitHostPort(addr)
			out, err := testpeer.Run(t, 15*time.Second, curl, "-sS", "--max-time", "10", "--cacert", ca.CAFile,
				"--resolve", "edge.example:"+port+":127.0.0.1", "https://edge.example:"+port+"/")
			if tc.ok {
				if err != nil || out != "nginx-origin" {
					t.Fatalf("curl through prism: %v %q", err, out)
				}
				c := rec.Expect(t, event.Connect, event.StatusConnect)
				wantSpectrum(t, &c, map[string]any{
					"OriginTlsMode": "strict", "ClientTlsProtocol": "TLSv1.3", "ClientTlsStatus": "OK",
					"ClientTlsClientHelloServerName": "edge.example",
					"OriginTlsProtocol":              "TLSv1.3", "OriginTlsStatus": "OK", "OriginTlsFingerprint": fp})
				if !strings.HasPrefix(c.ClientTLS.Cipher, "AEAD-") || !strings.HasPrefix(c.OriginTLS.Cipher, "AEAD-") {
					t.Errorf("ciphers %q / %q", c.ClientTLS.Cipher, c.OriginTLS.Cipher)
				}
				d := rec.Terminal(t)
				if d.Type != event.Disconnect || d.OriginTLS != c.OriginTLS || d.ClientTLS != c.ClientTLS {
					t.Errorf("disconnect %s %d lost TLS fields: %+v / %+v", d.Type, d.Status, d.ClientTLS, d.OriginTLS)
				}
				return
			}
			if err == nil {
				t.Fatalf("curl succeeded through a strict origin with the wrong CA: %q", out)
			}
			e := rec.Terminal(t)
			wantSpectrum(t, &e, map[string]any{
				"Event": "originError", "Status": 520, "OriginTlsMode": "strict", "ClientTlsStatus": "OK",
				"OriginTlsStatus": "HANDSHAKE_FAILED", "OriginTlsProtocol": "unknown", "OriginTlsCipher": "UNK",
				"OriginTlsFingerprint": fp})
		})
	}
}

// TestTLSErrors: each edge failure is one tlsError record with its status.
func TestTLSErrors(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	origin := testpeer.Echo(t)
	tests := []struct {
		name   string
		tls    string
		args   []string
		status int
		fields map[string]any
	}{
		{"SNI not allowed", "{mode: flexible, sni_allow: [edge.example], certificates: [{cert: " + edge.CertFile + ", key: " + edge.KeyFile + "}]}",
			[]string{"-servername", "other.example"}, 400,
			map[string]any{"ClientTlsStatus": "INVALID_SNI", "ClientTlsClientHelloServerName": "other.example"}},
		{"TLS 1.0", "{mode: flexible, certificates: [{cert: " + edge.CertFile + ", key: " + edge.KeyFile + "}]}",
			[]string{"-servername", "edge.example", "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"}, 443,
			map[string]any{"ClientTlsStatus": "HANDSHAKE_FAILED", "ClientTlsProtocol": "unknown"}},
		{"no usable certificate", "{mode: flexible, certificates: [{cert: /nonexistent.pem, key: /nonexistent.key}]}",
			[]string{"-servername", "edge.example"}, 540,
			map[string]any{"ClientTlsStatus": "INVALID_CONFIG", "ClientTlsClientHelloServerName": "edge.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`, "tls: "+tc.tls))
			testpeer.Run(t, 15*time.Second, openssl, append([]string{"s_client", "-connect", addr}, tc.args...)...)
			e := rec.Terminal(t)
			tc.fields["Event"], tc.fields["Status"] = "tlsError", tc.status
			wantSpectrum(t, &e, tc.fields)
		})
	}
}

// TestTLSPassthroughRoute: mode off, SNI routed to an s_server origin; the
// client sees the origin's certificate and the record names the SNI.
func TestTLSPassthroughRoute(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	ca := tlstest.NewCA(t, "prism e2e CA")
	routedLeaf := ca.Issue(t, tlstest.Leaf{Names: []string{"routed.example"}})
	routed := testpeer.OpenSSLServer(t, routedLeaf.CertFile, routedLeaf.KeyFile)
	fallback := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+fallback+`"]}`,
		"tls:",
		"  mode: \"off\"",
		"  passthrough_routes: [{sni: \"*.example\", origins: {addresses: [\""+routed+"\"]}}]"))
	out, err := testpeer.Run(t, 15*time.Second, openssl, "s_client", "-connect", addr, "-servername", "routed.example",
		"-CAfile", ca.CAFile, "-verify_return_error")
	if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Fatalf("s_client through passthrough: %v\n%s", err, out)
	}
	c := rec.Expect(t, event.Connect, event.StatusConnect)
	if c.OriginAddr.String() != routed {
		t.Errorf("routed to %v, want %s", c.OriginAddr, routed)
	}
	wantSpectrum(t, &c, map[string]any{"OriginTlsMode": "off",
		"ClientTlsProtocol": "unknown", "ClientTlsStatus": "UNKNOWN", "ClientTlsClientHelloServerName": "routed.example",
		"OriginTlsProtocol": "none"})
}

// TestTLSErrorAfterConnect490: a forged record on an established, terminated
// connection ends it as disconnect 490.
func TestTLSErrorAfterConnect490(t *testing.T) {
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	origin := testpeer.Echo(t)
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"tls: {mode: flexible, certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]}"))
	raw := dial(t, addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "edge.example", InsecureSkipVerify: true})
	if _, err := tc.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	rec.Expect(t, event.Connect, event.StatusConnect)
	raw.Write([]byte{0x17, 0x03, 0x03, 0x00, 0x20})
	raw.Write(make([]byte, 0x20))
	d := rec.Terminal(t)
	if d.Type != event.Disconnect || d.Status != event.StatusClientTLSError || d.CloseSide != event.SideClient {
		t.Fatalf("got %s %d side %s (%s), want disconnect 490 from the client", d.Type, d.Status, d.CloseSide, d.Detail)
	}
}

// TestTLSProxyV2TLVs: PROXY v2 to the origin carries the SNI (AUTHORITY)
// and the client's TLS version and cipher (SSL).
func TestTLSProxyV2TLVs(t *testing.T) {
	ca := tlstest.NewCA(t, "prism e2e CA")
	edge := ca.Issue(t, tlstest.Leaf{Names: []string{"edge.example"}})
	headers := make(chan *proxyproto.Header, 1)
	origin := testpeer.Serve(t, func(c net.Conn) {
		h, err := proxyproto.Read(bufio.NewReader(c))
		if err != nil {
			headers <- nil
			return
		}
		headers <- h
		_, _ = c.Write([]byte("ok"))
	})
	_, _, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"proxy_protocol: v2",
		"tls: {mode: flexible, proxy_protocol_tlvs: true, certificates: [{cert: "+edge.CertFile+", key: "+edge.KeyFile+"}]}"))
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "edge.example", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var h *proxyproto.Header
	select {
	case h = <-headers:
	case <-time.After(10 * time.Second):
		t.Fatal("origin got no connection")
	}
	if h == nil {
		t.Fatal("origin could not read a PROXY header")
	}
	tlvs, err := h.TLVs()
	if err != nil {
		t.Fatal(err)
	}
	var authority string
	for _, tlv := range tlvs {
		if tlv.Type == proxyproto.PP2_TYPE_AUTHORITY {
			authority = string(tlv.Value)
		}
	}
	ssl, ok := tlvparse.FindSSL(tlvs)
	ver, _ := ssl.SSLVersion()
	cipher, _ := ssl.SSLCipher()
	if authority != "edge.example" || !ok || ver != "TLSv1.2" || cipher != "ECDHE-ECDSA-AES256-GCM-SHA384" {
		t.Errorf("TLVs: authority %q, ssl %v version %q cipher %q", authority, ok, ver, cipher)
	}
}

// TestTLSPassthroughSplices: a passthrough app that peeks at the
// ClientHello (peek_sni) logs the SNI and still relays with splice(2)
// afterwards. The helper below runs the proxy, a TLS client and a TLS
// origin in a child test process under strace, which counts the
// successful splice calls: 4 MiB through 64 KiB pipes takes at least
// 64 in and 64 out (the test asks for 8, which any pipe up to 1 MiB
// meets); a relay that copied through user space would make none.
func TestTLSPassthroughSplices(t *testing.T) {
	if os.Getenv("PRISM_PEEK_SPLICE_HELPER") != "" {
		passthroughSpliceHelper(t)
		return
	}
	if !relay.SocksAvailable() {
		t.Skip("no relay event loop (PRISM_RELAY_POLLER=off, or not Linux): relays read through net.Conn and never splice")
	}
	n, trace, out := testpeer.StraceSplices(t, "^TestTLSPassthroughSplices$", "PRISM_PEEK_SPLICE_HELPER=1")
	if !strings.Contains(out, "--- PASS: TestTLSPassthroughSplices") {
		t.Fatalf("helper did not pass:\n%s", out)
	}
	if n < 8 {
		t.Fatalf("%d successful splice calls for 4 MiB through a peeking passthrough, want >= 8:\n%.2000s", n, trace)
	}
}

// passthroughSpliceHelper is TestTLSPassthroughSplices' child: a Go TLS
// client sends 4 MiB through a mode-off app with peek_sni to a Go TLS
// origin, which answers with the byte count it read.
func passthroughSpliceHelper(t *testing.T) {
	ca := tlstest.NewCA(t, "prism e2e CA")
	bulk := ca.Issue(t, tlstest.Leaf{Names: []string{"bulk.example"}})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{bulk.TLS()}})
	if err != nil {
		t.Fatal(err)
	}
	testpeer.ServeListener(t, ln, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c) // until the client's close_notify
		fmt.Fprintf(c, "%d\n", n)
	})
	_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+ln.Addr().String()+`"]}`,
		"tls:",
		"  mode: \"off\"",
		"  peek_sni: true"))
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "bulk.example", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 4 << 20
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != strconv.Itoa(size) {
		t.Fatalf("origin read %q (err %v), want %d", line, err, size)
	}
	// Read to the origin's close before closing: a close_notify sent while
	// the origin is closing would be reset (498/499), not a clean 200.
	_, _ = io.Copy(io.Discard, br)
	conn := rec.Expect(t, event.Connect, event.StatusConnect)
	wantSpectrum(t, &conn, map[string]any{"OriginTlsMode": "off",
		"ClientTlsProtocol": "unknown", "ClientTlsClientHelloServerName": "bulk.example"})
	c.Close()
	d := rec.Expect(t, event.Disconnect, event.StatusOK)
	if d.ClientBytes < size {
		t.Errorf("ClientBytes %d, want at least %d", d.ClientBytes, size)
	}
}

// TestTLSLongSNIRefused: a ClientHello whose server name is longer than a
// DNS name is refused with tlsError 400 before any origin is dialed, in
// passthrough with sni_allow and with a route alike. Its first 255 bytes
// end in ".example.com", which once let it pass sni_allow
// ["*.example.com"] (and take the route), the origin receiving the whole
// name.
func TestTLSLongSNIRefused(t *testing.T) {
	long := strings.Repeat("a", 255-len(".example.com")) + ".example.com" + "evil.attacker.net"
	dialed := make(chan struct{}, 4)
	origin := testpeer.Serve(t, func(c net.Conn) { dialed <- struct{}{} })
	for _, tc := range []struct{ origins, tls string }{
		{`{addresses: ["` + origin + `"]}`, `tls: {mode: "off", sni_allow: ["*.example.com"]}`},
		{`{addresses: ["127.0.0.1:1"]}`, `tls: {mode: "off", passthrough_routes: [{sni: "*.example.com", origins: {addresses: ["` + origin + `"]}}]}`},
	} {
		_, rec, addr := startProxy(t, appYAML("127.0.0.1:0", tc.origins, tc.tls))
		c := dial(t, addr)
		if _, err := c.Write(tlstest.ClientHello(t, long)); err != nil {
			t.Fatal(err)
		}
		e := rec.Terminal(t)
		if e.Type != event.TLSError || e.Status != event.StatusInvalidSNI || len(e.ClientTLS.ServerName) > 253 {
			t.Fatalf("%s: %s %d (SNI %d bytes) %q, want tlsError 400", tc.tls, e.Type, e.Status, len(e.ClientTLS.ServerName), e.Detail)
		}
		wantSpectrum(t, &e, map[string]any{"ClientTlsStatus": "INVALID_SNI"})
	}
	select {
	case <-dialed: // the records above come after any dial, so this does not race
		t.Fatal("the origin was dialed for a refused name")
	default:
	}
}
