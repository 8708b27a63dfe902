package logjob

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/deliver"
	"github.com/prismproxy/prism/internal/render"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/spool"
)

// Config is one log job (an entry of log_jobs), the Logpush job model.
type Config struct {
	// Name identifies the job in stats and in the proxy's own log; unique.
	Name string `yaml:"name"`
	// Dataset is the renderer: spectrum_events | edgeone_l4 | cloudconnexa | ocsf.
	Dataset string `yaml:"dataset"`
	// Fields to write, in this order; default all, in the dataset's order.
	Fields []string `yaml:"fields"`
	// TimestampFormat: unixnano (default) | unix | rfc3339. Only datasets
	// whose schema leaves the choice open (spectrum_events) accept it.
	TimestampFormat string `yaml:"timestamp_format"`
	// SampleRate keeps this fraction of sessions (0 < rate <= 1, default 1),
	// applied after the filter.
	SampleRate *float64 `yaml:"sample_rate"`
	// Filter is a Logpush filter: a JSON string, or the same as a YAML mapping.
	Filter FilterSpec `yaml:"filter"`
	// OutputType: ndjson (default) | csv.
	OutputType string `yaml:"output_type"`
	// Interval between periodic records of open sessions (edgeone_l4 only;
	// at least 1s). Zero: a final record only.
	Interval time.Duration `yaml:"interval"`
	Batch    BatchConfig   `yaml:"batch"`
	// QueueSize bounds the events waiting for this job (default 8192).
	// When it is full, events are dropped and counted, never waited for.
	QueueSize int `yaml:"queue_size"`
	// Logpush's output options. Record-level ones are rendered by the
	// encoder; a nil string keeps the output type's default (ndjson: "{",
	// "}\n", ","; csv: "", "\n", ","). Batch-level ones (batch_prefix,
	// batch_suffix, record_delimiter) go around and between the records of
	// each batch a destination writes whole (file, stdout, http lines, s3).
	RecordPrefix    *string `yaml:"record_prefix"`
	RecordSuffix    *string `yaml:"record_suffix"`
	FieldDelimiter  *string `yaml:"field_delimiter"`
	RecordTemplate  string  `yaml:"record_template"`
	RecordDelimiter string  `yaml:"record_delimiter"`
	BatchPrefix     string  `yaml:"batch_prefix"`
	BatchSuffix     string  `yaml:"batch_suffix"`
	// CVE202144228 writes every "${" as "x{" (Logpush's CVE-2021-44228).
	CVE202144228 bool `yaml:"CVE-2021-44228"`
	// CloudConnexa sets the envelope of the cloudconnexa dataset.
	CloudConnexa *render.CloudConnexaConfig `yaml:"cloudconnexa"`
	// Destination is where batches go: stdout, file, http, s3 or kafka.
	Destination deliver.Config `yaml:"destination"`
	// Spool keeps accepted batches on disk until a remote destination
	// (http, s3, kafka) has taken them.
	Spool spool.Config `yaml:"spool"`
}

// BatchConfig bounds the batches a destination receives; a batch is cut
// when the first limit is reached.
type BatchConfig struct {
	MaxRecords  int           `yaml:"max_records"`  // default 1000
	MaxBytes    int           `yaml:"max_bytes"`    // default 5 MiB
	MaxInterval time.Duration `yaml:"max_interval"` // default 1s
}

// Defaults.
const (
	DefaultQueueSize   = 8192
	DefaultMaxRecords  = 1000
	DefaultMaxBytes    = 5 << 20
	DefaultMaxInterval = time.Second
	// Batch defaults of an s3 destination (Logpush's for object stores).
	ObjectStoreMaxRecords  = 100000
	ObjectStoreMaxInterval = 30 * time.Second
	// MinInterval is the shortest periodic-record interval.
	MinInterval  = time.Second
	maxQueueSize = 1 << 22
)

// FilterSpec is a filter as written in the config: a JSON string, or a YAML
// mapping holding the same structure (converted to JSON when decoded).
type FilterSpec string

// UnmarshalYAML accepts a string or a mapping.
func (f *FilterSpec) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*f = FilterSpec(s)
		return nil
	case yaml.MappingNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("line %d: filter holds a value JSON cannot carry (NaN or infinity?): %w", n.Line, err)
		}
		*f = FilterSpec(b)
		return nil
	}
	return fmt.Errorf("line %d: filter must be a JSON string or a mapping", n.Line)
}

// SetDefaults fills in zero values with the defaults.
func (c *Config) SetDefaults() {
	if c.OutputType == "" {
		c.OutputType = "ndjson"
	}
	if c.TimestampFormat == "" && render.TimestampChoice(c.Dataset) {
		c.TimestampFormat = "unixnano"
	}
	if c.SampleRate == nil {
		one := 1.0
		c.SampleRate = &one
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Destination.Type == deliver.TypeS3 {
		// Logpush's defaults for object stores: one object per 30 s (or
		// 100,000 records, or max_bytes), not one a second.
		if c.Batch.MaxRecords == 0 {
			c.Batch.MaxRecords = ObjectStoreMaxRecords
		}
		if c.Batch.MaxInterval == 0 {
			c.Batch.MaxInterval = ObjectStoreMaxInterval
		}
	}
	if c.Batch.MaxRecords == 0 {
		c.Batch.MaxRecords = DefaultMaxRecords
	}
	if c.Batch.MaxBytes == 0 {
		c.Batch.MaxBytes = DefaultMaxBytes
	}
	if c.Batch.MaxInterval == 0 {
		c.Batch.MaxInterval = DefaultMaxInterval
	}
	c.Destination.SetDefaults()
	c.Spool.SetDefaults()
}

// encoderOptions converts the job's output choices.
func (c *Config) encoderOptions() (render.Options, error) {
	var opt render.Options
	var err error
	opt.Fields = c.Fields
	// "unixnano" is the zero value, so it is accepted for every dataset;
	// NewEncoder rejects other formats for datasets with fixed timestamps.
	if opt.TimestampFormat, err = render.ParseTimestampFormat(c.TimestampFormat); err != nil {
		return opt, err
	}
	if opt.Output, err = render.ParseOutput(c.OutputType); err != nil {
		return opt, err
	}
	if c.CloudConnexa != nil {
		opt.CloudConnexa = *c.CloudConnexa
	}
	opt.OutputOptions = render.OutputOptions{
		RecordPrefix: c.RecordPrefix, RecordSuffix: c.RecordSuffix, FieldDelimiter: c.FieldDelimiter,
		RecordTemplate: c.RecordTemplate, EscapeJNDI: c.CVE202144228,
	}
	return opt, nil
}

// outputOptionsSet reports whether any Logpush output option is set.
func (c *Config) outputOptionsSet() bool {
	return c.RecordPrefix != nil || c.RecordSuffix != nil || c.FieldDelimiter != nil || c.RecordTemplate != "" ||
		c.RecordDelimiter != "" || c.BatchPrefix != "" || c.BatchSuffix != "" || c.CVE202144228
}

// batchFraming returns batch_prefix, batch_suffix and record_delimiter
// (escaped for CVE-2021-44228 when asked).
func (c *Config) batchFraming() (prefix, suffix, delim []byte) {
	conv := func(s string) []byte {
		if s == "" {
			return nil
		}
		b := []byte(s)
		if c.CVE202144228 {
			render.EscapeJNDI(b)
		}
		return b
	}
	return conv(c.BatchPrefix), conv(c.BatchSuffix), conv(c.RecordDelimiter)
}

// Validate checks the job; keys are relative to the job ("filter",
// "fields[3]", "destination.path"). It does not apply defaults: zero
// values are accepted where a default exists.
func (c *Config) Validate() []*cfgerr.Error {
	var errs cfgerr.List
	if c.Name == "" {
		errs.Add("name", "is required")
	}
	if _, err := render.FieldNames(c.Dataset); err != nil {
		if c.Dataset == "" {
			errs.Add("dataset", "is required (one of %s)", strings.Join(render.Datasets, ", "))
		} else {
			errs.Add("dataset", "%v", err)
		}
		errs.Merge("destination", c.Destination.Validate())
		errs.Merge("spool", c.Spool.Validate())
		return errs
	}
	names, _ := render.FieldNames(c.Dataset)
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	seen := map[string]bool{}
	for i, f := range c.Fields {
		switch {
		case !known[f]:
			errs.Add(cfgerr.Index("fields", i), "unknown field %q for dataset %s", f, c.Dataset)
		case seen[f]:
			errs.Add(cfgerr.Index("fields", i), "field %q is listed twice", f)
		}
		seen[f] = true
	}
	tsOK := true
	if c.TimestampFormat != "" {
		if _, err := render.ParseTimestampFormat(c.TimestampFormat); err != nil {
			errs.Add("timestamp_format", "%v", err)
			tsOK = false
		} else if !render.TimestampChoice(c.Dataset) && c.TimestampFormat != "unixnano" {
			errs.Add("timestamp_format", "dataset %s has fixed timestamp formats; remove timestamp_format", c.Dataset)
			tsOK = false
		}
	}
	if r := c.SampleRate; r != nil && !(*r > 0 && *r <= 1) { // also NaN, which compares false to everything
		errs.Add("sample_rate", "must be greater than 0 and at most 1, got %v", *c.SampleRate)
	}
	outOK := true
	if _, err := render.ParseOutput(c.OutputType); err != nil {
		errs.Add("output_type", "%v", err)
		outOK = false
	}
	if c.Interval != 0 {
		switch {
		case !render.Periodic(c.Dataset):
			errs.Add("interval", "dataset %s has no periodic records; remove interval", c.Dataset)
		case c.Interval < MinInterval:
			errs.Add("interval", "must be at least %v, got %v", MinInterval, c.Interval)
		}
	}
	if c.Batch.MaxRecords < 0 {
		errs.Add("batch.max_records", "must not be negative")
	}
	if c.Batch.MaxBytes < 0 {
		errs.Add("batch.max_bytes", "must not be negative")
	}
	if c.Batch.MaxInterval < 0 {
		errs.Add("batch.max_interval", "must not be negative")
	}
	if c.QueueSize < 0 || c.QueueSize > maxQueueSize {
		errs.Add("queue_size", "must be between 1 and %d", maxQueueSize)
	}
	if c.CloudConnexa != nil && c.Dataset != render.CloudConnexa {
		errs.Add("cloudconnexa", "is only valid for dataset cloudconnexa")
	}
	if c.outputOptionsSet() && tsOK && outOK {
		if opt, err := c.encoderOptions(); err == nil {
			if _, err := render.NewEncoder(c.Dataset, render.Node{}, opt); err != nil {
				errs.Add("record_template", "%v", strings.TrimPrefix(err.Error(), "record_template: "))
			}
		}
		if c.FieldDelimiter != nil && *c.FieldDelimiter == "" {
			errs.Add("field_delimiter", "must not be empty")
		}
		switch {
		case c.Destination.Type == deliver.TypeHTTP && c.Destination.HTTP.JSONRecords():
			errs.Add("destination.framing", "framing %s builds its own body from the records: remove the Logpush output options (record_prefix, batch_prefix, ...) or use framing lines", c.Destination.HTTP.Framing)
		case c.Destination.Type == deliver.TypeKafka && (c.BatchPrefix != "" || c.BatchSuffix != "" || c.RecordDelimiter != ""):
			errs.Add("batch_prefix", "a kafka destination sends one message per record: batch_prefix, batch_suffix and record_delimiter do not apply")
		}
	}
	if c.Filter != "" && tsOK && outOK {
		opt, err := c.encoderOptions()
		if err == nil {
			opt.Fields = nil // the filter may use any field of the dataset
			var enc *render.Encoder
			if enc, err = render.NewEncoder(c.Dataset, render.Node{}, opt); err == nil {
				_, err = CompileFilter(string(c.Filter), enc)
			}
		}
		if err != nil {
			errs.Add("filter", "%v", err)
		}
	}
	errs.Merge("destination", c.Destination.Validate())
	errs.Merge("spool", c.Spool.Validate())
	if t := typeOr(c.Destination.Type); c.Spool.Enabled() && (t == sink.TypeStdout || t == sink.TypeFile) {
		errs.Add("spool", "a spool is for http, s3 and kafka destinations (this job writes to %s)", typeOr(c.Destination.Type))
	}
	// A batch larger than the whole spool cannot be stored at all: it
	// would fail as a write error and be lost, not counted as a full
	// spool. A batch may pass batch.max_bytes by its last record and its
	// framing, hence the factor of two.
	if c.Spool.Enabled() && c.Spool.MaxBytes > 0 && c.Batch.MaxBytes > 0 && c.Spool.MaxBytes < 2*int64(c.Batch.MaxBytes) {
		errs.Add("spool.max_bytes", "%d is less than twice batch.max_bytes (%d): a batch could be larger than the whole spool, and it would be lost; raise spool.max_bytes or lower batch.max_bytes", c.Spool.MaxBytes, c.Batch.MaxBytes)
	}
	if c.Destination.Type == deliver.TypeHTTP && c.Destination.HTTP.JSONRecords() && c.OutputType == "csv" {
		errs.Add("destination.framing", "framing %s wraps JSON records: use output_type ndjson", c.Destination.HTTP.Framing)
	}
	return errs
}

func typeOr(t string) string {
	if t == "" {
		return "stdout"
	}
	return t
}

// Jobs is the log_jobs section as one cfgerr.Section, for a list of jobs
// built by hand: cfgerr.Prepare(logjob.Jobs(jobs)) defaults and validates
// them in place, as package config does for the jobs it loads.
type Jobs []Config

// SetDefaults defaults every job.
func (j Jobs) SetDefaults() {
	for i := range j {
		j[i].SetDefaults()
	}
}

// Validate is ValidateAll.
func (j Jobs) Validate() []*cfgerr.Error { return ValidateAll(j) }

// ValidateAll validates every job and that names are unique; keys start
// with the job's index ("[1].name").
func ValidateAll(jobs []Config) []*cfgerr.Error {
	var errs cfgerr.List
	names := map[string]int{}
	spools := map[string]int{}
	for i := range jobs {
		if d := jobs[i].Spool.Dir; d != "" {
			clean := filepath.Clean(d)
			if first, dup := spools[clean]; dup {
				errs.Add(cfgerr.Join(cfgerr.Index("", i), "spool.dir"), "spool directory %s is already used by job %d: each job needs its own", d, first)
			} else {
				spools[clean] = i
			}
		}
		prefix := cfgerr.Index("", i)
		errs.Merge(prefix, jobs[i].Validate())
		if n := jobs[i].Name; n != "" {
			if first, dup := names[n]; dup {
				errs.Add(cfgerr.Join(prefix, "name"), "job name %q is already used by job %d", n, first)
			} else {
				names[n] = i
			}
		}
	}
	return errs
}
