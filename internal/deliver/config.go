package deliver

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/httpdst"
	"github.com/prismproxy/prism/internal/sink/kafkadst"
	"github.com/prismproxy/prism/internal/sink/s3dst"
)

// Remote destination types (next to sink.TypeStdout and sink.TypeFile).
const (
	TypeHTTP  = "http"
	TypeS3    = "s3"
	TypeKafka = "kafka"
)

// Defaults of the delivery settings.
const (
	DefaultRetryInitial  = time.Second
	DefaultRetryMax      = time.Minute
	DefaultMemoryBatches = 16
	DefaultFlushTimeout  = 5 * time.Second
	// MaxFlushTimeout stays under the daemon's 15 s for flushing log jobs.
	MaxFlushTimeout = 10 * time.Second
)

// Config is a log job's "destination". Its keys are flat, as an operator
// writes them (`{type: http, url: ..., compression: gzip}`): the keys
// common to every remote type are decoded here, the rest into the type's
// own section, strictly, so that a key of another type is an unknown key.
type Config struct {
	Type string `yaml:"type"` // stdout (default) | file | http | s3 | kafka
	// DestinationConf is a Logpush destination_conf string
	// (s3://bucket/path?region=..., r2://..., https://host/path?header_X=...),
	// a shorthand for type and its settings; keys given next to it win.
	DestinationConf string `yaml:"destination_conf"`
	// Retry bounds the exponential backoff between attempts (with jitter).
	Retry RetryConfig `yaml:"retry"`
	// MemoryBatches bounds the batches kept in memory for retries when the
	// job has no spool (default 16); further batches are dropped, counted.
	MemoryBatches int `yaml:"memory_batches"`
	// FlushTimeout is how long shutdown keeps trying to deliver what is
	// pending (default 5s); what a spool holds then waits for the next start.
	FlushTimeout time.Duration `yaml:"flush_timeout"`

	File  sink.Config     `yaml:"-"` // stdout, file
	HTTP  httpdst.Config  `yaml:"-"`
	S3    s3dst.Config    `yaml:"-"`
	Kafka kafkadst.Config `yaml:"-"`

	confErr   string // why DestinationConf did not parse
	confLater bool   // DestinationConf is an ${NAME} reference: applied by Expanded
}

// RetryConfig is the backoff between delivery attempts.
type RetryConfig struct {
	Initial time.Duration `yaml:"initial"` // default 1s
	Max     time.Duration `yaml:"max"`     // default 1m
}

// Remote reports whether the type is delivered with retries (http, s3,
// kafka) rather than written locally.
func (c *Config) Remote() bool {
	switch c.Type {
	case TypeHTTP, TypeS3, TypeKafka:
		return true
	}
	return false
}

var commonKeys = map[string]bool{"type": true, "destination_conf": true, "retry": true, "memory_batches": true, "flush_timeout": true}

// common is what the first decoding step fills.
type common struct {
	Type            string        `yaml:"type"`
	DestinationConf string        `yaml:"destination_conf"`
	Retry           RetryConfig   `yaml:"retry"`
	MemoryBatches   int           `yaml:"memory_batches"`
	FlushTimeout    time.Duration `yaml:"flush_timeout"`
}

// UnmarshalYAML decodes the common keys, then the rest into the type's
// section.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: destination must be a mapping (type: ... and its settings)", n.Line)}}
	}
	cn := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	rn := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		dst := rn
		if commonKeys[n.Content[i].Value] {
			dst = cn
		}
		dst.Content = append(dst.Content, n.Content[i], n.Content[i+1])
	}
	var msgs []string
	add := func(err error) error {
		if err == nil {
			return nil
		}
		if te, ok := err.(*yaml.TypeError); ok {
			msgs = append(msgs, te.Errors...)
			return nil
		}
		return err
	}
	var cm common
	if err := add(strictDecode(cn, &cm)); err != nil {
		return err
	}
	c.Type, c.DestinationConf, c.Retry, c.MemoryBatches, c.FlushTimeout = cm.Type, cm.DestinationConf, cm.Retry, cm.MemoryBatches, cm.FlushTimeout
	if c.DestinationConf != "" {
		if _, err := url.Parse(c.DestinationConf); err != nil || !strings.Contains(c.DestinationConf, "://") {
			if strings.Contains(c.DestinationConf, "${") {
				// The URL itself (or its scheme or host) is an ${NAME}
				// reference: applied once the references are replaced
				// (Expanded). References in query values are applied
				// as they are and replaced afterwards, unescaped, like
				// any other value.
				c.confLater = true
				if len(rn.Content) > 0 {
					// Decoded for a type not known yet, and then
					// overridden by the string: refuse the mix.
					c.confErr = "is an ${NAME} reference, applied after the other keys were read: set " +
						rn.Content[0].Value + " (and the type's other settings) in the variable's string too, or name only destination_conf and the delivery keys"
				}
			}
		}
		if !c.confLater {
			c.setConf(c.DestinationConf)
		}
	}
	var err error
	switch c.Type {
	case "", sink.TypeStdout, sink.TypeFile:
		// sink.Config has a type key too: decode it with the rest.
		rn.Content = append(rn.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "type"}, &yaml.Node{Kind: yaml.ScalarNode, Value: c.Type})
		err = strictDecode(rn, &c.File)
	case TypeHTTP:
		err = strictDecode(rn, &c.HTTP)
	case TypeS3:
		err = strictDecode(rn, &c.S3)
	case TypeKafka:
		err = strictDecode(rn, &c.Kafka)
	}
	if err := add(err); err != nil {
		return err
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

// setConf applies a destination_conf: the settings it carries and the type
// it names, or why it cannot (reported by Validate).
func (c *Config) setConf(conf string) {
	t, err := c.applyConf(conf)
	switch {
	case err != nil:
		c.confErr = err.Error()
	case c.Type == "":
		c.Type = t
	case c.Type != t:
		c.confErr = fmt.Sprintf("is a %s destination but type is %s", t, c.Type)
	}
}

// Expanded is called once the config's ${NAME} references are replaced: a
// destination_conf whose scheme or host is a reference (the whole Logpush
// string in one variable) is applied now, read as a URL after the
// expansion. Such a destination names no keys of its type beside it
// (UnmarshalYAML refuses them): they would have been decoded before the
// type was known.
func (c *Config) Expanded() {
	if c.confLater && c.confErr == "" {
		c.confLater = false
		c.setConf(c.DestinationConf)
	}
}

// SetDefaults fills in the defaults of the type and of delivery.
func (c *Config) SetDefaults() {
	if c.Type == "" {
		c.Type = sink.TypeStdout
	}
	switch c.Type {
	case sink.TypeStdout, sink.TypeFile:
		c.File.Type = c.Type
		c.File.SetDefaults()
	case TypeHTTP:
		c.HTTP.SetDefaults()
	case TypeS3:
		c.S3.SetDefaults()
	case TypeKafka:
		c.Kafka.SetDefaults()
	}
	if c.Remote() {
		if c.Retry.Initial == 0 {
			c.Retry.Initial = DefaultRetryInitial
		}
		if c.Retry.Max == 0 {
			c.Retry.Max = max(DefaultRetryMax, c.Retry.Initial)
		}
		if c.MemoryBatches == 0 {
			c.MemoryBatches = DefaultMemoryBatches
		}
		if c.FlushTimeout == 0 {
			c.FlushTimeout = DefaultFlushTimeout
		}
	}
}

// Validate checks the destination; keys are relative to it.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if c.confErr != "" {
		errs.Add("destination_conf", "%s", c.confErr)
	}
	switch c.Type {
	case "", sink.TypeStdout, sink.TypeFile:
		f := c.File
		f.Type = c.Type
		errs = append(errs, f.Validate()...)
	case TypeHTTP:
		errs = append(errs, c.HTTP.Validate()...)
	case TypeS3:
		errs = append(errs, c.S3.Validate()...)
	case TypeKafka:
		errs = append(errs, c.Kafka.Validate()...)
	default:
		errs.Add("type", "unknown destination type %q (want stdout, file, http, s3 or kafka)", c.Type)
	}
	if !c.Remote() {
		if c.Retry != (RetryConfig{}) {
			errs.Add("retry", "is only valid for http, s3 and kafka destinations")
		}
		if c.MemoryBatches != 0 {
			errs.Add("memory_batches", "is only valid for http, s3 and kafka destinations")
		}
		if c.FlushTimeout != 0 {
			errs.Add("flush_timeout", "is only valid for http, s3 and kafka destinations")
		}
		return errs
	}
	if c.Retry.Initial < 0 {
		errs.Add("retry.initial", "must not be negative")
	}
	if c.Retry.Max < 0 {
		errs.Add("retry.max", "must not be negative")
	} else if c.Retry.Max > 0 && c.Retry.Max < c.Retry.Initial {
		errs.Add("retry.max", "must not be less than retry.initial (%v)", c.Retry.Initial)
	}
	if c.MemoryBatches < 0 || c.MemoryBatches > 4096 {
		errs.Add("memory_batches", "must be between 1 and 4096")
	}
	if c.FlushTimeout < 0 {
		errs.Add("flush_timeout", "must not be negative")
	} else if c.FlushTimeout > MaxFlushTimeout {
		errs.Add("flush_timeout", "must be at most %v (shutdown gives every log job 15s to finish), got %v", MaxFlushTimeout, c.FlushTimeout)
	}
	return errs
}

// applyConf fills the settings a Logpush destination_conf string gives and
// returns the type it names. Messages never repeat the string's query
// (credentials live there).
func (c *Config) applyConf(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("is not a URL (want s3://, r2://, https:// or http://)")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", fmt.Errorf("bad query string")
	}
	take := func(k string) string {
		v := q.Get(k)
		q.Del(k)
		return v
	}
	rest := func() error {
		if len(q) == 0 {
			return nil
		}
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("unknown parameter(s) %s for %s://", strings.Join(keys, ", "), u.Scheme)
	}
	switch u.Scheme {
	case "s3", "r2":
		if u.Host == "" {
			return "", fmt.Errorf("%s:// needs a bucket: %s://bucket/path", u.Scheme, u.Scheme)
		}
		c.S3.Bucket = u.Host
		c.S3.Prefix = strings.TrimPrefix(u.Path, "/")
		c.S3.AccessKeyID = take("access-key-id")
		c.S3.SecretAccessKey = take("secret-access-key")
		c.S3.SessionToken = take("session-token")
		_ = take("sse") // server-side encryption is the bucket's default policy
		if u.Scheme == "r2" {
			acct := take("account-id")
			if acct == "" {
				return "", fmt.Errorf("r2:// needs account-id")
			}
			c.S3.Endpoint = "https://" + acct + ".r2.cloudflarestorage.com"
			c.S3.Region = "auto"
			c.S3.PathStyle = true
		} else {
			c.S3.Region = take("region")
			if e := take("endpoint"); e != "" {
				c.S3.Endpoint = e
				c.S3.PathStyle = true
			}
			if p := take("path-style"); p != "" {
				c.S3.PathStyle = p == "true"
			}
		}
		return TypeS3, rest()
	case "http", "https":
		if u.Host == "" {
			return "", fmt.Errorf("%s:// needs a host", u.Scheme)
		}
		for k := range q {
			if name, ok := strings.CutPrefix(k, "header_"); ok && name != "" {
				if c.HTTP.Headers == nil {
					c.HTTP.Headers = map[string]string{}
				}
				c.HTTP.Headers[name] = q.Get(k)
				q.Del(k)
			}
		}
		u.RawQuery = q.Encode()
		c.HTTP.URL = u.String()
		return TypeHTTP, nil
	}
	return "", fmt.Errorf("unsupported scheme %q (want s3, r2, https or http)", u.Scheme)
}
