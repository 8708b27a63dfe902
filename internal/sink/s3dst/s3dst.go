// Package s3dst is the s3 destination of a log job: one gzip object per
// batch in any S3-compatible store (AWS S3, Cloudflare R2, MinIO, Tencent
// COS...) through minio-go. Objects are named the way Logpush names them,
//
//	{prefix}/{YYYYMMDD}/{start}_{end}_{hash}.log.gz
//
// with start and end the times of the batch's first and last record
// (20261201T090000Z) and YYYYMMDD the day of its first record; a prefix
// holding {DATE} gets the day there instead. The last part is a hash of
// the batch, not a random number: a batch sent again (a retry whose first
// attempt did land, or a spooled batch after a crash) overwrites the same
// object instead of duplicating it.
package s3dst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"hash/fnv"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
)

// DefaultTimeout bounds one upload.
const DefaultTimeout = 60 * time.Second

// Config is the s3 destination's part of a log job's "destination".
type Config struct {
	Bucket string `yaml:"bucket"`
	// Prefix is the key prefix (a path inside the bucket); {DATE} in it is
	// replaced by the batch's day.
	Prefix string `yaml:"prefix"`
	Region string `yaml:"region"`
	// Endpoint of an S3-compatible store: host[:port], or a URL whose
	// scheme says https (default) or http. Empty: AWS S3.
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
	// Credentials. Without access_key_id prism uses the usual AWS chain:
	// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, then
	// the instance role.
	AccessKeyID     string        `yaml:"access_key_id"`
	SecretAccessKey string        `yaml:"secret_access_key"`
	SessionToken    string        `yaml:"session_token"`
	Timeout         time.Duration `yaml:"timeout"`
}

// SetDefaults fills in the region and timeout.
func (c *Config) SetDefaults() {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate checks the section; keys are relative to the destination.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if c.Bucket == "" {
		errs.Add("bucket", "is required for type s3")
	} else if len(c.Bucket) < 3 || len(c.Bucket) > 63 || strings.ContainsAny(c.Bucket, "/ _") {
		errs.Add("bucket", "%q is not a bucket name (3-63 characters, no / or spaces; put a path in prefix)", c.Bucket)
	}
	if _, _, err := c.endpoint(); err != nil {
		errs.Add("endpoint", "%v", err)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		errs.Add("access_key_id", "access_key_id and secret_access_key go together")
	}
	if c.Timeout < 0 {
		errs.Add("timeout", "must not be negative")
	}
	if strings.HasPrefix(c.Prefix, "/") {
		errs.Add("prefix", "must not start with /")
	}
	return errs
}

// endpoint returns host[:port] and whether to use TLS.
func (c *Config) endpoint() (string, bool, error) {
	e := c.Endpoint
	if e == "" {
		return "s3.amazonaws.com", true, nil
	}
	// The endpoint is named without user info or query (httpdst.Redact):
	// credentials pasted there (key:secret@host, ?X-Amz-Signature=) must
	// not reach the validation error, and so prism's log.
	bad := func(want string) error {
		msg := fmt.Sprintf("%q is not %s", httpdst.Redact(e), want)
		if strings.ContainsAny(e, "@?#") {
			msg += " (shown without its user info and query; credentials go in access_key_id and secret_access_key)"
		}
		return errors.New(msg)
	}
	if !strings.Contains(e, "://") {
		if strings.ContainsAny(e, "/?@# ") {
			return "", false, bad("host[:port] or a URL")
		}
		return e, true, nil
	}
	u, err := url.Parse(e)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false, bad("an http(s)://host[:port] URL")
	}
	return u.Host, u.Scheme == "https", nil
}

// Sender uploads batches.
type Sender struct {
	cfg    Config
	client *minio.Client
	tr     *http.Transport // the client's own, closed by Close
	buf    bytes.Buffer
	gz     *gzip.Writer
	key    []byte
}

// New returns a sender for c (defaulted and validated, by package config
// or cfgerr.Prepare). It does not contact the store.
func New(c Config) (*Sender, error) {
	host, secure, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	if c.AccessKeyID != "" {
		creds = credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	cl, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: c.Region, BucketLookup: lookup,
		Transport: tr, MaxRetries: 1, // the delivery layer retries
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return &Sender{cfg: c, client: cl, tr: tr, gz: gz}, nil
}

// KeyTimeFormat is the start/end time in object names.
const KeyTimeFormat = "20060102T150405Z"

// Key returns the object name for b.
func Key(prefix string, b *sink.Batch) string {
	first, last := b.First.UTC(), b.Last.UTC()
	if first.IsZero() {
		first = time.Now().UTC()
	}
	if last.IsZero() {
		last = first
	}
	day := first.Format("20060102")
	p := strings.TrimSuffix(prefix, "/")
	if strings.Contains(p, "{DATE}") {
		p = strings.ReplaceAll(p, "{DATE}", day)
	} else if p == "" {
		p = day
	} else {
		p += "/" + day
	}
	h := fnv.New64a()
	h.Write(b.Data)
	return fmt.Sprintf("%s/%s_%s_%016x.log.gz", p, first.Format(KeyTimeFormat), last.Format(KeyTimeFormat), h.Sum64())
}

// Send uploads b as one gzip object.
func (s *Sender) Send(ctx context.Context, b *sink.Batch) error {
	s.buf.Reset()
	s.gz.Reset(&s.buf)
	s.gz.Write(b.Header)
	s.gz.Write(b.Body())
	if err := s.gz.Close(); err != nil {
		return fmt.Errorf("s3: gzip: %w", err)
	}
	key := Key(s.cfg.Prefix, b)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(s.buf.Bytes()), int64(s.buf.Len()),
		minio.PutObjectOptions{ContentType: "application/gzip", DisableMultipart: true})
	if err == nil {
		return nil
	}
	code := minio.ToErrorResponse(err).StatusCode
	err = fmt.Errorf("s3 put %s/%s: %w", s.cfg.Bucket, key, err)
	switch code {
	case http.StatusBadRequest, http.StatusLengthRequired, http.StatusRequestEntityTooLarge:
		return sink.Rejected(err)
	}
	return err
}

// Close releases the client's idle connections: a reload replaces the
// sender, and the old one's keep-alive connections would otherwise stay
// open until the transport's idle timeout (90 s), one set per reload.
// Send is done when Close is called (the delivery goroutine has stopped).
func (s *Sender) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}
