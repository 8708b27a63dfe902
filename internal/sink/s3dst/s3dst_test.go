package s3dst

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
)

// fakeS3 serves an in-memory S3 implementation on loopback and returns a
// client for it and its endpoint URL.
func fakeS3(t *testing.T, bucket string) (*minio.Client, string) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	cl, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4("AK", "SK", ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	return cl, srv.URL
}

func TestKeys(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 5, 0, time.UTC)
	b := sinktest.Batch(t0, 1, 2, 3)
	re := regexp.MustCompile(`^logs/spectrum/20261201/20261201T090005Z_20261201T090007Z_[0-9a-f]{16}\.log\.gz$`)
	if k := Key("logs/spectrum", b); !re.MatchString(k) {
		t.Errorf("key %q", k)
	}
	if k := Key("logs/{DATE}/spectrum/", b); !regexp.MustCompile(`^logs/20261201/spectrum/20261201T090005Z_`).MatchString(k) {
		t.Errorf("{DATE} key %q", k)
	}
	if k := Key("", b); !regexp.MustCompile(`^20261201/2026`).MatchString(k) {
		t.Errorf("no prefix: %q", k)
	}
	if Key("p", b) != Key("p", b) || Key("p", b) == Key("p", sinktest.Batch(t0, 1, 2, 4)) {
		t.Error("keys are not a function of the batch")
	}
}

func TestPutObjectsReadBack(t *testing.T) {
	cl, endpoint := fakeS3(t, "prism-logs")
	s, err := New(prepared(t, Config{Bucket: "prism-logs", Prefix: "edge/spectrum", Endpoint: endpoint, PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	batches := []*sink.Batch{sinktest.Batch(t0, 1, 2), sinktest.Batch(t0.Add(time.Hour), 3)}
	batches[1].Header = []byte("h\n")
	for _, b := range batches {
		if err := s.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// A batch sent twice lands once.
	if err := s.Send(context.Background(), batches[0]); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for o := range cl.ListObjects(context.Background(), "prism-logs", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 2 {
		t.Fatalf("objects %v", keys)
	}
	want := map[string][]byte{Key("edge/spectrum", batches[0]): batches[0].Data, Key("edge/spectrum", batches[1]): append([]byte("h\n"), batches[1].Data...)}
	for _, k := range keys {
		if !regexp.MustCompile(`^edge/spectrum/2026120[12]/`).MatchString(k) {
			t.Errorf("key %q not partitioned by day", k)
		}
		obj, err := cl.GetObject(context.Background(), "prism-logs", k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(obj)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: not gzip: %v", k, err)
		}
		body, _ := io.ReadAll(zr)
		if !bytes.Equal(body, want[k]) {
			t.Errorf("%s: %q, want %q", k, body, want[k])
		}
	}
}

func TestMissingBucketIsRetried(t *testing.T) {
	_, endpoint := fakeS3(t, "other")
	s, err := New(prepared(t, Config{Bucket: "absent", Endpoint: endpoint, PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), sinktest.Batch(time.Now(), 1))
	if err == nil || sink.IsRejected(err) {
		t.Fatalf("missing bucket: %v (want a temporary error: the operator may create it)", err)
	}
}

// prepared is c defaulted and validated, as New expects it.
func prepared(t testing.TB, c Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEndpointErrorHidesCredentials: an endpoint refused for holding user
// info or a query is named without them (the error reaches prism's log),
// scheme-less or not, with an '@' in the secret too.
func TestEndpointErrorHidesCredentials(t *testing.T) {
	for _, e := range []string{
		"AKIAXXX:SuperSecret@minio.local:9000",
		"AKIAXXX:Super@Secret@minio.local:9000",
		"minio.local:9000?X-Amz-Signature=SuperSecret",
		"minio.local:9000#SuperSecret",
		"https://AKIAXXX:SuperSecret@minio.local:9000",
		"https://AKIAXXX:Super@Secret@minio.local:9000",
		"https://minio.local:9000/?X-Amz-Signature=SuperSecret",
		"https://AKIAXXX:Super/Secret@minio.local:9000",
	} {
		c := Config{Bucket: "logs", Endpoint: e}
		err := cfgerr.Prepare(&c)
		if err == nil {
			t.Errorf("endpoint %q accepted", e)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "Secret") || strings.Contains(msg, "AKIAXXX") || !strings.Contains(msg, "minio.local") {
			t.Errorf("endpoint %q: %s", e, msg)
		}
	}
}

// TestCloseReleasesConnections: Close closes the sender's keep-alive
// connections to the store (each reload makes a new sender; the old one's
// stayed open until the idle timeout).
func TestCloseReleasesConnections(t *testing.T) {
	be := s3mem.New()
	if err := be.CreateBucket("logs"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	open := 0
	closed := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(gofakes3.New(be).Server())
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch st {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s, err := New(prepared(t, Config{Bucket: "logs", Endpoint: srv.URL, PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), sinktest.Batch(time.Now(), 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		mu.Lock()
		n := open
		mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-closed:
		case <-timeout:
			t.Fatalf("%d connection(s) still open after Close", n)
		}
	}
}
