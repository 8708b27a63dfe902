package kafkadst

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
	"github.com/prismproxy/prism/internal/tlstest"
)

// TestTLSAndSASL: a cluster that speaks only TLS and SCRAM-SHA-512 takes
// the records with the right password and CA, and not without.
func TestTLSAndSASL(t *testing.T) {
	ca := tlstest.NewCA(t, "kfake CA")
	cert := ca.Loopback(t, "kfake").TLS()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "prism"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "prism", "right"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(cfg Config) error {
		cfg.Brokers, cfg.Topic, cfg.Timeout = c.ListenAddrs(), "prism", 2*time.Second
		s, err := New(prepared(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.Send(ctx, sinktest.Batch(time.Now(), 1, 2))
	}
	good := Config{TLS: sink.TLSConfig{Enabled: true, CAFile: ca.CAFile}, SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "prism", Password: "right"}}
	if err := send(good); err != nil {
		t.Fatalf("TLS + SCRAM-SHA-512: %v", err)
	}
	bad := good
	bad.SASL.Password = "wrong"
	if err := send(bad); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	noCA := good
	noCA.TLS.CAFile = ""
	if err := send(noCA); err == nil {
		t.Fatal("an unknown CA was accepted")
	}
}
