// Package kafkadst is the kafka destination of a log job (franz-go): one
// Kafka record per log record, keyed by the session id, so that every
// record of a session lands on one partition, in order. The producer asks
// for acks from all in-sync replicas and is idempotent (franz-go's
// default), and compresses its batches.
//
// A batch is produced whole and Send waits for every record. When some
// records fail, the whole batch is sent again by the delivery layer, so
// the records that had landed are duplicated: at-least-once. When the
// first failure is one no retry can cure (a record too large, an invalid
// record), the batch is rejected instead, landed records and all.
//
// franz-go retries a broker whose connection cannot be set up (refused,
// TLS handshake, SASL) until the records time out, and what the records
// then fail with often no longer says why. A hook on each client
// remembers each broker's last setup failure, and an attempt whose records
// got no answer names it first (see connHook).
package kafkadst

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
)

// DefaultTimeout bounds the delivery of one batch.
const DefaultTimeout = 30 * time.Second

// Config is the kafka destination's part of a log job's "destination".
type Config struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Compression of produced batches: zstd (default) | lz4 | snappy | gzip | none.
	Compression string         `yaml:"compression"`
	TLS         sink.TLSConfig `yaml:"tls"`
	SASL        SASLConfig     `yaml:"sasl"`
	Timeout     time.Duration  `yaml:"timeout"`
}

// SASLConfig authenticates the producer.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"` // plain | scram-sha-256 | scram-sha-512
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// SetDefaults fills in zstd and the timeout.
func (c *Config) SetDefaults() {
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate checks the section; keys are relative to the destination.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if len(c.Brokers) == 0 {
		errs.Add("brokers", "is required for type kafka (host:port of at least one broker)")
	}
	for i, b := range c.Brokers {
		if c := strings.LastIndexByte(b, ':'); c <= 0 || c == len(b)-1 || strings.Contains(b, "/") {
			errs.Add(cfgerr.Index("brokers", i), "%q is not host:port", b)
		}
	}
	if c.Topic == "" {
		errs.Add("topic", "is required for type kafka")
	} else if len(c.Topic) > 249 || strings.ContainsFunc(c.Topic, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) {
		errs.Add("topic", "%q is not a Kafka topic name (letters, digits, . _ -)", c.Topic)
	}
	if _, err := codec(c.Compression); err != nil {
		errs.Add("compression", "%v", err)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			errs.Add("sasl.mechanism", "is required with a username or password (plain, scram-sha-256 or scram-sha-512)")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if c.SASL.Username == "" {
			errs.Add("sasl.username", "is required")
		}
	default:
		errs.Add("sasl.mechanism", "unknown mechanism %q (use plain, scram-sha-256 or scram-sha-512)", c.SASL.Mechanism)
	}
	if c.Timeout != 0 && c.Timeout < time.Second {
		errs.Add("timeout", "must be at least 1s, got %v", c.Timeout)
	}
	errs.Merge("tls", c.TLS.Validate())
	return errs
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "zstd":
		return kgo.ZstdCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q (use zstd, lz4, snappy, gzip or none)", name)
}

// Sender produces batches. It is not safe for concurrent use (the delivery
// goroutine is its only caller).
type Sender struct {
	cfg  Config
	opts []kgo.Opt
	// client is nil after a Send that had to close it (see Send); the next
	// Send makes a new one from opts.
	client *kgo.Client
	hook   *connHook // client's: its brokers' connection failures
	recs   []kgo.Record
	ptrs   []*kgo.Record
	keys   []byte
}

// New returns a sender for c (defaulted and validated, by package config
// or cfgerr.Prepare). It does not wait for the brokers.
func New(c Config) (*Sender, error) {
	cc, err := codec(c.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(cc),
		kgo.RecordDeliveryTimeout(c.Timeout),
		kgo.ProducerLinger(0),
	}
	if c.TLS.Enabled || c.TLS.Set() {
		tc, err := c.TLS.Build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASL.Mechanism {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	s := &Sender{cfg: c, opts: opts}
	if err := s.newClient(); err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return s, nil
}

// newClient makes the client from opts, with a hook of its own: a closed
// client's connection errors (its own Close cutting them) must not become
// the cause of the next client's failures.
func (s *Sender) newClient() error {
	h := &connHook{sasl: saslDesc(s.cfg.SASL)}
	cl, err := kgo.NewClient(append(s.opts[:len(s.opts):len(s.opts)], kgo.WithHooks(h))...)
	if err != nil {
		return err
	}
	s.client, s.hook = cl, h
	return nil
}

// saslDesc is how SASL failures name the credentials: the mechanism and
// the user (a typo in either is the usual cause), never the password.
func saslDesc(c SASLConfig) string {
	if c.Mechanism == "" {
		return ""
	}
	return fmt.Sprintf("%s, user %q", c.Mechanism, c.Username)
}

// connHook remembers, per broker (host:port), why the client's last
// attempt to set up a connection to it failed, until one succeeds. The
// records of an attempt against a broker that refuses the credentials or
// the certificate only time out: depending on which of the record
// timeout, Send's ctx and the client's Close comes first, they fail with
// "records have timed out ..., last err: ...", "context deadline
// exceeded" or "client closed", and the last err of the first one is only
// EOF when the broker just closes the connection on bad credentials (old
// brokers, kfake). The hook sees the failure itself.
type connHook struct {
	sasl    string      // saslDesc; "" without SASL
	closing atomic.Bool // set before Close: errors from then on are Close's own
	mu      sync.Mutex
	seq     uint64
	brokers map[string]connFailure
}

type connFailure struct {
	err error  // the described failure; nil while only saslRead is known
	seq uint64 // of err: the most recent failure is the cause reported
	// saslRead is the error reading the answer to a SASL request: when
	// the connection's setup then fails with it, the broker cut the
	// connection during the SASL exchange.
	saslRead error
}

var (
	_ kgo.HookBrokerConnect = (*connHook)(nil)
	_ kgo.HookBrokerRead    = (*connHook)(nil)
)

func brokerAddr(m kgo.BrokerMetadata) string {
	return net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
}

// OnBrokerRead notes a failed read of the answer to SaslHandshake or
// SaslAuthenticate (any other read returns at once).
func (h *connHook) OnBrokerRead(m kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil || key != int16(kmsg.SASLHandshake) && key != int16(kmsg.SASLAuthenticate) || h.closing.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.brokers == nil {
		h.brokers = make(map[string]connFailure)
	}
	addr := brokerAddr(m)
	f := h.brokers[addr]
	f.saslRead = err
	h.brokers[addr] = f
}

// OnBrokerConnect is called once per connection attempt, after the dial
// (with TLS, the handshake), ApiVersions and the SASL exchange, with the
// error of whichever failed.
func (h *connHook) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if h.closing.Load() || errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) {
		return
	}
	addr := brokerAddr(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.brokers, addr)
		return
	}
	if h.brokers == nil {
		h.brokers = make(map[string]connFailure)
	}
	f := h.brokers[addr]
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.IllegalSaslState):
		f.err = fmt.Errorf("broker %s: SASL authentication failed (%s): %w", addr, h.sasl, err)
	case f.saslRead != nil && errors.Is(err, f.saslRead) && errors.Is(err, io.EOF):
		f.err = fmt.Errorf("broker %s: SASL authentication failed (%s): the broker closed the connection (wrong user, password or mechanism?): %w", addr, h.sasl, err)
	case f.saslRead != nil && errors.Is(err, f.saslRead):
		f.err = fmt.Errorf("broker %s: SASL authentication failed (%s): %w", addr, h.sasl, err)
	case errors.As(err, &verify) || errors.As(err, &alert):
		f.err = fmt.Errorf("broker %s: TLS handshake failed: %w", addr, err)
	default:
		f.err = fmt.Errorf("broker %s: connection failed: %w", addr, err)
	}
	f.saslRead = nil
	h.seq++
	f.seq = h.seq
	h.brokers[addr] = f
}

// cause is the most recent setup failure of a broker that has not
// connected since, or nil.
func (h *connHook) cause() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var last connFailure
	for _, f := range h.brokers {
		if f.err != nil && f.seq > last.seq {
			last = f
		}
	}
	return last.err
}

// Send produces every record of b and waits until all are acknowledged,
// for at most the configured timeout and never past ctx.
//
// franz-go's ProduceSync stops waiting for a done ctx only for records not
// yet written to a broker: with the idempotent producer, records in a
// request that got no answer (a broker that accepted the connection and
// hangs) are kept and retried for ever, and RecordDeliveryTimeout cannot
// fail them either. So when ctx is done (or the timeout passes) before the
// answer, Send closes the client, which fails every record it holds, and
// the next Send makes a new client: a hung broker then costs one timeout
// per attempt, and the delivery layer's Close is bounded by its flush
// timeout instead of waiting for the broker. Records that had landed are
// sent again with the retry (at-least-once, as for any failed batch).
func (s *Sender) Send(ctx context.Context, b *sink.Batch) error {
	if s.client == nil {
		if err := s.newClient(); err != nil {
			return fmt.Errorf("kafka topic %s: client: %w", s.cfg.Topic, err)
		}
	}
	n := b.Records
	if cap(s.recs) < n {
		s.recs = make([]kgo.Record, n)
		s.ptrs = make([]*kgo.Record, n)
	}
	s.recs, s.ptrs = s.recs[:n], s.ptrs[:n]
	s.keys = s.keys[:0]
	for i := 0; i < n; i++ {
		s.keys = hex.AppendEncode(s.keys, b.Keys[i][:])
	}
	for i := 0; i < n; i++ {
		v := b.Record(i)
		if len(v) > 0 && v[len(v)-1] == '\n' {
			v = v[:len(v)-1]
		}
		s.recs[i] = kgo.Record{Key: s.keys[24*i : 24*i+24 : 24*i+24], Value: v}
		s.ptrs[i] = &s.recs[i]
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	cl, hook := s.client, s.hook
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		hook.closing.Store(true)
		cl.Close() // fails the records in flight: ProduceSync returns
		close(closed)
	})
	res := cl.ProduceSync(ctx, s.ptrs...)
	if !stop() {
		<-closed // Close has run: no goroutine of it outlives Send
		s.client = nil
	}
	failed := 0
	var first error
	for _, r := range res {
		if r.Err != nil {
			failed++
			if first == nil {
				first = r.Err
			}
		}
	}
	clear(s.recs) // drop references to b's buffers
	if first == nil {
		return nil
	}
	rejected := errors.Is(first, kerr.MessageTooLarge) || errors.Is(first, kerr.RecordListTooLarge) || errors.Is(first, kerr.InvalidRecord)
	gaveUp := s.client == nil
	if gaveUp {
		first = fmt.Errorf("%w (gave up waiting for the broker's answer: %w)", first, context.Cause(ctx))
	}
	// Records that got no answer: a broker whose connection cannot be set
	// up is the likely reason, and the only place its error is kept.
	if gaveUp || errors.Is(first, kgo.ErrRecordTimeout) || errors.Is(first, kgo.ErrClientClosed) {
		if cause := hook.cause(); cause != nil {
			first = fmt.Errorf("%w; %w", cause, first)
		}
	}
	err := fmt.Errorf("kafka topic %s: %d of %d records not acknowledged: %w", s.cfg.Topic, failed, n, first)
	if rejected {
		return sink.Rejected(err)
	}
	return err
}

// Close closes the client.
func (s *Sender) Close() error {
	if s.client != nil {
		s.hook.closing.Store(true)
		s.client.Close()
		s.client, s.hook = nil, nil
	}
	return nil
}
