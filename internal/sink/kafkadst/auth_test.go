package kafkadst

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/tlstest"
)

// sendOnce sends one batch through a new sender to brokers with a 5s
// timeout: a refused attempt's cause is known once a connection's setup
// has failed (TLS, then SCRAM-SHA-512 on both sides), which took over 2 s
// once under the whole suite's load with -race.
func sendOnce(t *testing.T, brokers []string, cfg Config) error {
	t.Helper()
	cfg.Brokers, cfg.Topic, cfg.Timeout = brokers, "prism", 5*time.Second
	s, err := New(prepared(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, sinktest.Batch(time.Now(), 1, 2))
}

// TestTLSAndSASL: a cluster that speaks only TLS and SCRAM-SHA-512 takes
// the records with the right password and CA, and not without; the error
// of a refused attempt names its cause (the SASL or TLS failure and the
// broker), not only the timeout the records ended with (kfake, like old
// brokers, just closes the connection on bad credentials).
func TestTLSAndSASL(t *testing.T) {
	ca := tlstest.NewCA(t, "kfake CA")
	cert := ca.Loopback(t, "kfake").TLS()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "prism", "right"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the parallel subtests
	brokers := c.ListenAddrs()
	good := Config{TLS: sink.TLSConfig{Enabled: true, CAFile: ca.CAFile}, SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "prism", Password: "right"}}
	if err := sendOnce(t, brokers, good); err != nil {
		t.Fatalf("TLS + SCRAM-SHA-512: %v", err)
	}
	broker := "broker " + brokers[0] + ": "
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"wrong password", func(c *Config) { c.SASL.Password = "wrong" },
			[]string{broker + `SASL authentication failed (scram-sha-512, user "prism")`}},
		{"unknown user", func(c *Config) { c.SASL.Username = "nobody" },
			[]string{broker + `SASL authentication failed (scram-sha-512, user "nobody")`}},
		{"refused mechanism", func(c *Config) { c.SASL.Mechanism = "plain" },
			[]string{broker + `SASL authentication failed (plain, user "prism")`}},
		{"unknown CA", func(c *Config) { c.TLS.CAFile = "" },
			[]string{broker + "TLS handshake failed", "certificate signed by unknown authority"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tc.edit(&cfg)
			err := sendOnce(t, brokers, cfg)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name the cause %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestSASLErrorOfTheBroker: a broker that answers the SASL exchange with
// an error (as Kafka does: SASL_AUTHENTICATION_FAILED for bad
// credentials, UNSUPPORTED_SASL_MECHANISM for a mechanism it does not
// enable) has its error in the one Send returns, whichever of the
// record timeout, the client's close and Send's ctx ends the attempt.
func TestSASLErrorOfTheBroker(t *testing.T) {
	const msg = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
	for _, tc := range []struct {
		name string
		key  kmsg.Key
		fail func(kmsg.Request) kmsg.Response
		want string
	}{
		{"authentication failed", kmsg.SASLAuthenticate, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			resp.ErrorMessage = kmsg.StringPtr(msg)
			return resp
		}, "SASL_AUTHENTICATION_FAILED: SASL Authentication failed.: " + msg},
		{"mechanism refused", kmsg.SASLHandshake, func(r kmsg.Request) kmsg.Response {
			resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
			resp.SupportedMechanisms = []string{"PLAIN"}
			return resp
		}, "UNSUPPORTED_SASL_MECHANISM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"),
				kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "prism", "right"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.ControlKey(int16(tc.key), func(r kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				return tc.fail(r), nil, true
			})
			err = sendOnce(t, c.ListenAddrs(), Config{SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "prism", Password: "wrong"}})
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			want := "broker " + c.ListenAddrs()[0] + `: SASL authentication failed (scram-sha-512, user "prism"): ` + tc.want
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name the cause %q:\n%v", want, err)
			}
		})
	}
}
