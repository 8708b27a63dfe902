package tlsedge

import (
	"crypto/tls"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/testpeer"
)

// TestCipherNamesMatchOpenSSL compares every TLS 1.2-and-older name with
// what the installed OpenSSL calls the same suite id.
func TestCipherNamesMatchOpenSSL(t *testing.T) {
	openssl := testpeer.Need(t, "openssl")
	out, err := testpeer.Run(t, 10*time.Second, openssl, "ciphers", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
	if err != nil {
		t.Fatalf("openssl ciphers: %v\n%s", err, out)
	}
	// "0xC0,0x2F - ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 Kx=ECDH ..."
	re := regexp.MustCompile(`(?m)^\s*0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (\S+)`)
	names := map[uint16]string{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		hi, _ := strconv.ParseUint(m[1], 16, 8)
		lo, _ := strconv.ParseUint(m[2], 16, 8)
		names[uint16(hi<<8|lo)] = m[3]
	}
	if len(names) < 20 {
		t.Fatalf("parsed only %d suites from openssl:\n%s", len(names), out)
	}
	checked := 0
	for id, ours := range cipherNames {
		if id>>8 == 0x13 { // TLS 1.3: Cloudflare's AEAD-* names, not OpenSSL's TLS_*
			continue
		}
		theirs, ok := names[id]
		if !ok {
			t.Logf("openssl does not know %#04x (%s); skipped", id, ours)
			continue
		}
		checked++
		if theirs != ours {
			t.Errorf("%#04x: we say %s, openssl says %s", id, ours, theirs)
		}
	}
	if checked < 15 {
		t.Errorf("only %d names compared", checked)
	}
}

func TestCipherAndProtocolNames(t *testing.T) {
	// Every suite crypto/tls can negotiate has a name.
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if CipherName(s.ID) == "UNK" {
			t.Errorf("no name for %s", s.Name)
		}
	}
	for id, want := range map[uint16]string{
		tls.TLS_AES_128_GCM_SHA256:       "AEAD-AES128-GCM-SHA256",
		tls.TLS_AES_256_GCM_SHA384:       "AEAD-AES256-GCM-SHA384",
		tls.TLS_CHACHA20_POLY1305_SHA256: "AEAD-CHACHA20-POLY1305-SHA256",
		0x0000:                           "UNK",
		0xfefe:                           "UNK",
	} {
		if got := CipherName(id); got != want {
			t.Errorf("CipherName(%#04x) = %s, want %s", id, got, want)
		}
	}
	for v, want := range map[uint16]string{0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3", 0x0200: "unknown", 0x7f1c: "unknown"} {
		if got := ProtocolName(v); got != want {
			t.Errorf("ProtocolName(%#04x) = %s, want %s", v, got, want)
		}
	}
}
