package tlsedge

import (
	"crypto/tls"

	"github.com/prismproxy/prism/internal/event"
)

// Spectrum TLS status values (ClientTlsStatus / OriginTlsStatus).
const (
	StatusOK              = "OK"
	StatusInternalError   = "INTERNAL_ERROR"
	StatusInvalidConfig   = "INVALID_CONFIG"
	StatusInvalidSNI      = "INVALID_SNI"
	StatusHandshakeFailed = "HANDSHAKE_FAILED"
)

// cipherNames holds the OpenSSL names of the suites crypto/tls can
// negotiate; Cloudflare's logs use these. TLS 1.3 suites are written the
// BoringSSL way (AEAD-...), as Cloudflare writes them, not as OpenSSL's
// TLS_AES_128_GCM_SHA256.
var cipherNames = map[uint16]string{
	tls.TLS_RSA_WITH_RC4_128_SHA:                      "RC4-SHA",
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA:                 "DES-CBC3-SHA",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:                  "AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:                  "AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA256:               "AES128-SHA256",
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA:              "ECDHE-ECDSA-RC4-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA:                "ECDHE-RSA-RC4-SHA",
	tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA:           "ECDHE-RSA-DES-CBC3-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256:       "ECDHE-ECDSA-AES128-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256:         "ECDHE-RSA-AES128-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
	tls.TLS_AES_128_GCM_SHA256:                        "AEAD-AES128-GCM-SHA256",
	tls.TLS_AES_256_GCM_SHA384:                        "AEAD-AES256-GCM-SHA384",
	tls.TLS_CHACHA20_POLY1305_SHA256:                  "AEAD-CHACHA20-POLY1305-SHA256",
}

// CipherName returns the cipher suite's name as Cloudflare logs write it
// (OpenSSL names, TLS 1.3 as AEAD-...), or "UNK".
func CipherName(id uint16) string {
	if n, ok := cipherNames[id]; ok {
		return n
	}
	return event.TLSCipherUnknown
}

// ProtocolName returns the protocol version as Spectrum writes it: SSLv3,
// TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, or "unknown".
func ProtocolName(v uint16) string {
	switch v {
	case tls.VersionSSL30: //nolint:staticcheck // named for logging only
		return "SSLv3"
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return event.TLSProtocolUnknown
}
