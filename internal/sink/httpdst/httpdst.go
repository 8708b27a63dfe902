// Package httpdst is the http destination of a log job: each batch is one
// POST to the configured URL, compressed (gzip by default, or zstd), with
// the operator's headers, framed the way the receiver expects: lines (the
// job's ndjson or CSV as Logpush sends it), a JSON array (EdgeOne's HTTP
// body), a Splunk HEC event envelope, an Elasticsearch/OpenSearch _bulk
// body or a Datadog logs intake array.
//
// Send classifies the answer for the delivery layer: 2xx is delivered;
// 429, 408, 5xx and network errors are temporary (429 and 503 with their
// Retry-After); any other status refuses the batch for good. Error
// messages name the URL without its query string, and never a header
// value, so no secret reaches prism's log.
package httpdst

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
)

// Framings of the request body.
const (
	FramingLines     = "lines"
	FramingJSONArray = "json_array"
	FramingSplunkHEC = "splunk_hec"
	FramingBulk      = "elasticsearch_bulk"
	FramingDatadog   = "datadog"
)

// Compressions.
const (
	CompressGzip = "gzip"
	CompressZstd = "zstd"
	CompressNone = "none"
)

// DefaultTimeout bounds one request.
const DefaultTimeout = 30 * time.Second

// Config is the http destination's part of a log job's "destination".
type Config struct {
	URL         string            `yaml:"url"`
	Compression string            `yaml:"compression"` // gzip (default) | zstd | none
	Headers     map[string]string `yaml:"headers"`
	Framing     string            `yaml:"framing"` // lines (default) | json_array | splunk_hec | elasticsearch_bulk | datadog
	Timeout     time.Duration     `yaml:"timeout"`
	TLS         sink.TLSConfig    `yaml:"tls"`
	// Splunk sets the HEC envelope's metadata (framing splunk_hec).
	Splunk SplunkConfig `yaml:"splunk"`
	// Index is the _index of every _bulk action (framing
	// elasticsearch_bulk); empty when the URL names the index
	// (/my-index/_bulk).
	Index string `yaml:"index"`
}

// SplunkConfig is the metadata of a Splunk HEC event.
type SplunkConfig struct {
	Index      string `yaml:"index"`
	Source     string `yaml:"source"`
	Sourcetype string `yaml:"sourcetype"`
	Host       string `yaml:"host"`
}

// SetDefaults fills in gzip, lines and the timeout.
func (c *Config) SetDefaults() {
	if c.Compression == "" {
		c.Compression = CompressGzip
	}
	if c.Framing == "" {
		c.Framing = FramingLines
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// JSONRecords reports whether the framing needs ndjson records (every
// framing but lines wraps or lists JSON objects).
func (c *Config) JSONRecords() bool { return c.Framing != "" && c.Framing != FramingLines }

// Redact returns u without its query string and user info, for messages.
// What url.Parse cannot take apart as scheme://host (an error, or a
// scheme-less "key:secret@host:port", which parses as scheme "key" with
// the rest opaque) loses everything from the first '?' or '#' and up to
// the last '@': a secret may hold an '@' of its own.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Opaque != "" {
		if i := strings.IndexAny(u, "?#"); i >= 0 {
			u = u[:i]
		}
		if i := strings.LastIndex(u, "@"); i >= 0 {
			u = u[i+1:]
		}
		return u
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}

// Validate checks the section; keys are relative to the destination.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if c.URL == "" {
		errs.Add("url", "is required for type http")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Add("url", "%q is not an http:// or https:// URL", Redact(c.URL))
	}
	switch c.Compression {
	case "", CompressGzip, CompressZstd, CompressNone:
	default:
		errs.Add("compression", "unknown compression %q (use gzip, zstd or none)", c.Compression)
	}
	switch c.Framing {
	case "", FramingLines, FramingJSONArray, FramingSplunkHEC, FramingBulk, FramingDatadog:
	default:
		errs.Add("framing", "unknown framing %q (use lines, json_array, splunk_hec, elasticsearch_bulk or datadog)", c.Framing)
	}
	if c.Timeout < 0 {
		errs.Add("timeout", "must not be negative")
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			errs.Add("headers", "bad header name %q", k)
		}
	}
	if c.Splunk != (SplunkConfig{}) && c.Framing != FramingSplunkHEC {
		errs.Add("splunk", "is only valid with framing splunk_hec")
	}
	if c.Index != "" && c.Framing != FramingBulk {
		errs.Add("index", "is only valid with framing elasticsearch_bulk")
	}
	errs.Merge("tls", c.TLS.Validate())
	return errs
}

// Sender posts batches.
type Sender struct {
	cfg    Config
	url    string
	shown  string // URL for messages
	client *http.Client
	ctype  string

	meta   []byte // Splunk metadata, after the event
	action []byte // _bulk action line

	body []byte
	zbuf []byte
	comp bytes.Buffer
	gz   *gzip.Writer
	zs   *zstd.Encoder
}

// New returns a sender for c (defaulted and validated, by package config
// or cfgerr.Prepare); csv says the job writes CSV (Content-Type).
func New(c Config, csv bool) (*Sender, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a log destination is addressed directly
	if c.TLS.Set() {
		tc, err := c.TLS.Build()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	s := &Sender{cfg: c, url: c.URL, shown: Redact(c.URL)}
	s.client = &http.Client{Transport: tr, Timeout: c.Timeout, CheckRedirect: s.checkRedirect}
	switch {
	case c.Framing == FramingLines && csv:
		s.ctype = "text/csv"
	case c.Framing == FramingLines, c.Framing == FramingBulk:
		s.ctype = "application/x-ndjson"
	default:
		s.ctype = "application/json"
	}
	s.precompute()
	switch c.Compression {
	case CompressGzip:
		s.gz, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	case CompressZstd:
		var err error
		if s.zs, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
	}
	return s, nil
}

// Send posts b.
func (s *Sender) Send(ctx context.Context, b *sink.Batch) error {
	s.body = s.frame(s.body[:0], b)
	body := s.body
	switch {
	case s.gz != nil:
		s.comp.Reset()
		s.gz.Reset(&s.comp)
		s.gz.Write(body)
		s.gz.Close()
		body = s.comp.Bytes()
	case s.zs != nil:
		s.zbuf = s.zs.EncodeAll(s.body, s.zbuf[:0])
		body = s.zbuf
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sink.Rejected(fmt.Errorf("http %s: bad request", s.shown))
	}
	req.Header.Set("Content-Type", s.ctype)
	switch s.cfg.Compression {
	case CompressGzip:
		req.Header.Set("Content-Encoding", "gzip")
	case CompressZstd:
		req.Header.Set("Content-Encoding", "zstd")
	}
	req.Header.Set("User-Agent", "prism")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the whole URL
		}
		return fmt.Errorf("http %s: %w", s.shown, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		err := fmt.Errorf("http %s: %s", s.shown, resp.Status)
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &sink.RetryAfterError{Err: err, After: d}
		}
		return err
	case code == http.StatusRequestTimeout || code >= 500:
		return fmt.Errorf("http %s: %s", s.shown, resp.Status)
	}
	return sink.Rejected(fmt.Errorf("http %s: %s", s.shown, resp.Status))
}

// keepPost follows a redirect only when the batch goes with it (307 and
// 308 repeat the POST and its body). After a 301, 302 or 303 the client
// would send a GET without the records, and a 2xx to that GET would count
// the batch as delivered: the 3xx is the answer instead, and a final 3xx
// refuses the batch (see Send).
func keepPost(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.Method != via[0].Method {
		return http.ErrUseLastResponse
	}
	return nil
}

// checkRedirect follows a redirect as keepPost says, and sends the
// configured headers (DD-API-KEY, X-Api-Key, a bearer token...) only to the
// configured host and port, and never from https to http: Go's client
// copies every header of the first request to the redirect's, dropping
// only Authorization and Cookie, and only for another domain. Content-Type,
// Content-Encoding and User-Agent stay (prism's own, or their override).
func (s *Sender) checkRedirect(req *http.Request, via []*http.Request) error {
	if err := keepPost(req, via); err != nil {
		return err
	}
	first := via[0].URL
	if strings.EqualFold(req.URL.Host, first.Host) && (first.Scheme != "https" || req.URL.Scheme == "https") {
		return nil
	}
	for k := range s.cfg.Headers {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Encoding", "User-Agent":
		default:
			req.Header.Del(k)
		}
	}
	return nil
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// frame appends the request body for b.
func (s *Sender) frame(dst []byte, b *sink.Batch) []byte {
	switch s.cfg.Framing {
	case FramingJSONArray, FramingDatadog:
		dst = append(dst, '[')
		for i := 0; i < b.Records; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, trimNL(b.Record(i))...)
		}
		return append(dst, ']')
	case FramingSplunkHEC:
		for i := 0; i < b.Records; i++ {
			dst = append(dst, `{"event":`...)
			dst = append(dst, trimNL(b.Record(i))...)
			dst = append(dst, s.meta...)
			dst = append(dst, "}\n"...)
		}
		return dst
	case FramingBulk:
		for i := 0; i < b.Records; i++ {
			dst = append(dst, s.action...)
			dst = append(dst, trimNL(b.Record(i))...)
			dst = append(dst, '\n')
		}
		return dst
	}
	dst = append(dst, b.Header...)
	return append(dst, b.Body()...)
}

// precompute builds the constant parts of the framings.
func (s *Sender) precompute() {
	sp := &s.cfg.Splunk
	for _, kv := range [...][2]string{{"index", sp.Index}, {"source", sp.Source}, {"sourcetype", sp.Sourcetype}, {"host", sp.Host}} {
		if kv[1] != "" {
			v, _ := json.Marshal(kv[1])
			s.meta = append(append(append(s.meta, ',', '"'), kv[0]...), '"', ':')
			s.meta = append(s.meta, v...)
		}
	}
	if s.cfg.Index != "" {
		v, _ := json.Marshal(s.cfg.Index)
		s.action = append(append([]byte(`{"index":{"_index":`), v...), "}}\n"...)
	} else {
		s.action = []byte(`{"index":{}}` + "\n")
	}
}

func trimNL(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// Close releases idle connections.
func (s *Sender) Close() error {
	s.client.CloseIdleConnections()
	if s.zs != nil {
		s.zs.Close()
	}
	return nil
}
