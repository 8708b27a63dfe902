package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const deliveryHead = "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\nlog_jobs:\n  - name: j\n    dataset: spectrum_events\n"

func TestDestinationsParse(t *testing.T) {
	t.Setenv("PRISM_TEST_TOKEN", "s3cr3t")
	cfg, err := Parse("ok.yaml", []byte(deliveryHead+`    destination:
      type: http
      url: https://logs.example.com/in
      headers: {Authorization: "Bearer ${PRISM_TEST_TOKEN}"}
      framing: splunk_hec
      splunk: {sourcetype: prism}
      retry: {initial: 200ms}
    spool: {dir: /tmp/prism-test-spool-x}
  - name: s3
    dataset: spectrum_events
    destination:
      destination_conf: "s3://logs/prism/{DATE}?region=eu-west-1&endpoint=http://127.0.0.1:9000&access-key-id=AK&secret-access-key=${PRISM_TEST_TOKEN}"
  - name: k
    dataset: edgeone_l4
    destination: {type: kafka, brokers: ["127.0.0.1:9092"], topic: prism-edgeone, compression: lz4}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.LogJobs[0].Destination
	if h.Type != "http" || h.HTTP.Headers["Authorization"] != "Bearer s3cr3t" || h.HTTP.Compression != "gzip" || h.Retry.Initial != 200*time.Millisecond || h.Retry.Max != time.Minute {
		t.Errorf("http destination: %+v", h)
	}
	if cfg.LogJobs[0].Spool.WhenFull != "drop_oldest" || cfg.LogJobs[0].Spool.MaxBytes != 1<<30 {
		t.Errorf("spool defaults: %+v", cfg.LogJobs[0].Spool)
	}
	s := cfg.LogJobs[1].Destination
	if s.Type != "s3" || s.S3.Bucket != "logs" || s.S3.Prefix != "prism/{DATE}" || s.S3.Region != "eu-west-1" ||
		s.S3.Endpoint != "http://127.0.0.1:9000" || !s.S3.PathStyle || s.S3.AccessKeyID != "AK" || s.S3.SecretAccessKey != "s3cr3t" {
		t.Errorf("s3 from destination_conf: %+v", s.S3)
	}
	k := cfg.LogJobs[2].Destination
	if k.Type != "kafka" || k.Kafka.Topic != "prism-edgeone" || k.Kafka.Compression != "lz4" {
		t.Errorf("kafka: %+v", k.Kafka)
	}
}

// TestDestinationConfFromTheEnvironment: a destination_conf that is one
// ${NAME} reference (the whole Logpush string kept out of the file, keys
// and all) is applied once expanded; it was parsed before the expansion
// and refused as "is not a URL". So is one whose scheme or host is a
// reference: the string is expanded, then read as a URL (its values
// percent-encoded, as in Logpush). A reference only in a query value is
// put in as it is, unescaped (TestDestinationsParse).
func TestDestinationConfFromTheEnvironment(t *testing.T) {
	t.Setenv("PRISM_TEST_DEST", "s3://logs/prism?region=us-east-1&access-key-id=AK&secret-access-key=S%2Bk")
	t.Setenv("PRISM_TEST_BUCKET", "edge-logs")
	t.Setenv("PRISM_TEST_SECRET", "a%2Bb/c")
	cfg, err := Parse("ok.yaml", []byte(deliveryHead+`    destination:
      destination_conf: "${PRISM_TEST_DEST}"
  - name: host
    dataset: spectrum_events
    destination:
      destination_conf: "s3://${PRISM_TEST_BUCKET}/p?region=eu-west-1&secret-access-key=${PRISM_TEST_SECRET}&access-key-id=AK"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.LogJobs[0].Destination
	if s.Type != "s3" || s.S3.Bucket != "logs" || s.S3.Prefix != "prism" || s.S3.Region != "us-east-1" || s.S3.SecretAccessKey != "S+k" {
		t.Errorf("destination_conf from one variable: type %q, %+v", s.Type, s.S3)
	}
	h := cfg.LogJobs[1].Destination
	if h.Type != "s3" || h.S3.Bucket != "edge-logs" || h.S3.Region != "eu-west-1" {
		t.Errorf("destination_conf with the bucket from a variable: type %q, %+v", h.Type, h.S3)
	}
	if h.S3.SecretAccessKey != "a+b/c" {
		t.Errorf("secret from a variable: %q", h.S3.SecretAccessKey)
	}
	// Keys of the type beside such a reference were decoded before the
	// type was known: refused, with the key named.
	_, err = Parse("mix.yaml", []byte(deliveryHead+"    destination:\n      destination_conf: \"${PRISM_TEST_DEST}\"\n      region: eu-west-1\n"))
	if err == nil || !strings.Contains(err.Error(), "mix.yaml:10: log_jobs[0].destination.destination_conf: is an ${NAME} reference") || !strings.Contains(err.Error(), "set region") {
		t.Errorf("a reference with the type's keys beside it: %v", err)
	}
}

func TestDestinationConfHTTPHeaders(t *testing.T) {
	cfg, err := Parse("ok.yaml", []byte(deliveryHead+`    destination:
      destination_conf: "https://logs.example.com/in?header_Authorization=Basic%20abc&tag=edge"
`))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.LogJobs[0].Destination.HTTP
	if h.URL != "https://logs.example.com/in?tag=edge" || h.Headers["Authorization"] != "Basic abc" {
		t.Errorf("got %q %v", h.URL, h.Headers)
	}
}

func TestDestinationErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"key of another type", "    destination:\n      type: http\n      url: \"https://h/\"\n      bucket: b\n", `bad.yaml:12: log_jobs[0].destination.bucket: unknown key "bucket"`},
		{"unknown nested key", "    destination:\n      type: kafka\n      brokers: [\"127.0.0.1:9092\"]\n      topic: t\n      sasl: {mechanism: plain, username: u, pasword: p}\n", `bad.yaml:13: log_jobs[0].destination.sasl: unknown key "pasword"`},
		{"bad url", "    destination:\n      type: http\n      url: \"ftp://h/x?token=SECRET\"\n", `bad.yaml:11: log_jobs[0].destination.url: "ftp://h/x" is not an http:// or https:// URL`},
		{"bad conf", "    destination:\n      destination_conf: \"gs://bucket?token=SECRET\"\n", `bad.yaml:10: log_jobs[0].destination.destination_conf: unsupported scheme "gs"`},
		{"conf vs type", "    destination:\n      type: kafka\n      destination_conf: \"s3://bucket\"\n", `log_jobs[0].destination.destination_conf: is a s3 destination but type is kafka`},
		{"unknown conf param", "    destination:\n      destination_conf: \"s3://bucket/p?regoin=x&secret-access-key=SECRET\"\n", `unknown parameter(s) regoin for s3://`},
		{"spool on file", "    destination: {type: file, path: /tmp/x.log}\n    spool:\n      dir: /tmp/sp\n", `bad.yaml:10: log_jobs[0].spool: a spool is for http, s3 and kafka destinations`},
		{"csv with json framing", "    output_type: csv\n    destination:\n      type: http\n      url: \"https://h/\"\n      framing: json_array\n", `log_jobs[0].destination.framing: framing json_array wraps JSON records: use output_type ndjson`},
		{"relative spool dir", "    destination: {type: http, url: \"https://h/\"}\n    spool: {dir: spool/x}\n", `bad.yaml:10: log_jobs[0].spool.dir: "spool/x" is relative`},
		{"spool smaller than two batches", "    destination: {type: http, url: \"https://h/\"}\n    spool: {dir: /tmp/sp, max_bytes: 2097152}\n", `log_jobs[0].spool.max_bytes: 2097152 is less than twice batch.max_bytes (5242880)`},
		{"rotation on stdout", "    destination: {type: stdout, max_size_mb: 10}\n", `log_jobs[0].destination.max_size_mb: is only valid for type file`},
		{"bad when_full", "    destination: {type: http, url: \"https://h/\"}\n    spool: {dir: /tmp/sp, when_full: block}\n", `bad.yaml:10: log_jobs[0].spool.when_full: unknown policy "block"`},
		{"unset env", "    destination:\n      type: http\n      url: \"https://h/\"\n      headers: {Authorization: \"${PRISM_SURELY_UNSET_VAR}\"}\n", `bad.yaml:12: log_jobs[0].destination.headers.Authorization: environment variable PRISM_SURELY_UNSET_VAR is not set`},
		{"retry on file", "    destination: {type: file, path: /tmp/x.log, retry: {initial: 1s}}\n", `log_jobs[0].destination.retry: is only valid for http, s3 and kafka`},
		{"flush_timeout too long", "    destination: {type: http, url: \"https://h/\", flush_timeout: 1m}\n", `log_jobs[0].destination.flush_timeout: must be at most 10s`},
		{"bad broker", "    destination: {type: kafka, brokers: [\"localhost\"], topic: t}\n", `log_jobs[0].destination.brokers[0]: "localhost" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(deliveryHead+tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error repeats a secret: %v", err)
			}
		})
	}
}

func TestSpoolDirsUnique(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(deliveryHead+`    destination: {type: http, url: "https://h/"}
    spool: {dir: /tmp/sp}
  - name: j2
    dataset: spectrum_events
    destination: {type: http, url: "https://h/"}
    spool: {dir: /tmp/sp/}
`))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:14: log_jobs[1].spool.dir: spool directory /tmp/sp/ is already used by job 0") {
		t.Fatalf("got %v", err)
	}
}

func TestObjectStoreBatchDefaults(t *testing.T) {
	cfg, err := Parse("ok.yaml", []byte(deliveryHead+"    destination: {destination_conf: \"s3://bucket/p?region=us-east-1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.LogJobs[0].Batch; b.MaxInterval != 30*time.Second || b.MaxRecords != 100000 {
		t.Fatalf("s3 batch defaults: %+v", b)
	}
}

// TestLoggingDocExamples parses the destination examples of
// docs/logging.md, so that the page stays true to the code.
func TestLoggingDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/logging.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "### Examples\n\n```yaml\n")
	if i < 0 {
		t.Fatal("docs/logging.md has no destination examples")
	}
	s = s[i+len("### Examples\n\n```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	for _, v := range []string{"R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "COS_SECRET_ID", "COS_SECRET_KEY", "KAFKA_PASSWORD", "SPLUNK_HEC_TOKEN", "DD_API_KEY", "ELASTIC_API_KEY", "LOGS_TOKEN"} {
		t.Setenv(v, "x")
	}
	head := "node: {colo: X}\napps:\n  - id: a\n    listen: [\"127.0.0.1:1\"]\n    origins: {addresses: [\"127.0.0.1:2\"]}\n"
	// The Kafka example names a CA file: point it at one that exists.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("x"), 0o600)
	s = strings.ReplaceAll(s, "/etc/prism/kafka-ca.pem", ca)
	cfg, err := Parse("logging.md", []byte(head+s))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"spectrum-s3": "s3", "spectrum-r2": "s3", "edgeone-cos": "s3", "spectrum-kafka": "kafka",
		"spectrum-splunk": "http", "spectrum-datadog": "http", "spectrum-elastic": "http", "cloudconnexa-http": "http"}
	for _, j := range cfg.LogJobs {
		if want[j.Name] != j.Destination.Type {
			t.Errorf("job %s: type %q, want %q", j.Name, j.Destination.Type, want[j.Name])
		}
	}
	if len(cfg.LogJobs) != len(want) {
		t.Errorf("%d jobs", len(cfg.LogJobs))
	}
}
