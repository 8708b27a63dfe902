package httpdst

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/sink/sinktest"
)

type got struct {
	header http.Header
	body   []byte
}

// receiver is a loopback HTTP server that decodes each request body by
// its Content-Encoding and answers with the next status of codes (then 200).
func receiver(t *testing.T, codes ...int) (*httptest.Server, func() []got) {
	var mu sync.Mutex
	var reqs []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body []byte
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Errorf("gzip: %v", err)
				return
			}
			body, _ = io.ReadAll(zr)
		case "zstd":
			zr, _ := zstd.NewReader(nil)
			var err error
			if body, err = zr.DecodeAll(raw, nil); err != nil {
				t.Errorf("zstd: %v", err)
			}
		default:
			body = raw
		}
		mu.Lock()
		reqs = append(reqs, got{r.Header.Clone(), body})
		code := 200
		if len(codes) > 0 {
			code, codes = codes[0], codes[1:]
		}
		mu.Unlock()
		if code == 429 {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []got { mu.Lock(); defer mu.Unlock(); return append([]got(nil), reqs...) }
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func send(t *testing.T, c Config, b *sink.Batch) error {
	t.Helper()
	s, err := New(prepared(t, c), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Send(context.Background(), b)
}

func TestFramings(t *testing.T) {
	b := sinktest.Batch(t0, 1, 2)
	r0, r1 := strings.TrimSuffix(string(b.Record(0)), "\n"), strings.TrimSuffix(string(b.Record(1)), "\n")
	for _, tc := range []struct {
		cfg   Config
		ctype string
		want  string
	}{
		{Config{}, "application/x-ndjson", string(b.Data)},
		{Config{Framing: FramingJSONArray}, "application/json", "[" + r0 + "," + r1 + "]"},
		{Config{Framing: FramingDatadog}, "application/json", "[" + r0 + "," + r1 + "]"},
		{Config{Framing: FramingSplunkHEC, Splunk: SplunkConfig{Sourcetype: "prism:spectrum", Index: "edge"}}, "application/json",
			`{"event":` + r0 + `,"index":"edge","sourcetype":"prism:spectrum"}` + "\n" + `{"event":` + r1 + `,"index":"edge","sourcetype":"prism:spectrum"}` + "\n"},
		{Config{Framing: FramingBulk}, "application/x-ndjson", `{"index":{}}` + "\n" + r0 + "\n" + `{"index":{}}` + "\n" + r1 + "\n"},
		{Config{Framing: FramingBulk, Index: "prism-logs"}, "application/x-ndjson", `{"index":{"_index":"prism-logs"}}` + "\n" + r0 + "\n" + `{"index":{"_index":"prism-logs"}}` + "\n" + r1 + "\n"},
	} {
		t.Run(tc.cfg.Framing, func(t *testing.T) {
			srv, reqs := receiver(t)
			tc.cfg.URL = srv.URL + "/in"
			tc.cfg.Headers = map[string]string{"Authorization": "Splunk tok", "X-Env": "test"}
			if err := send(t, tc.cfg, b); err != nil {
				t.Fatal(err)
			}
			rs := reqs()
			if len(rs) != 1 {
				t.Fatalf("%d requests", len(rs))
			}
			h := rs[0].header
			if h.Get("Content-Encoding") != "gzip" || h.Get("Content-Type") != tc.ctype || h.Get("Authorization") != "Splunk tok" || h.Get("X-Env") != "test" {
				t.Errorf("headers %v", h)
			}
			if string(rs[0].body) != tc.want {
				t.Errorf("body\n%s\nwant\n%s", rs[0].body, tc.want)
			}
			if tc.cfg.Framing != "" && tc.cfg.Framing != FramingBulk && tc.cfg.Framing != FramingSplunkHEC {
				var v []map[string]any
				if err := json.Unmarshal(rs[0].body, &v); err != nil || len(v) != 2 {
					t.Errorf("not a JSON array of 2 objects: %v", err)
				}
			}
		})
	}
}

func TestCompressionAndCSV(t *testing.T) {
	b := sinktest.Batch(t0, 1)
	b.Header = []byte("s,n\n")
	for _, comp := range []string{CompressZstd, CompressNone} {
		srv, reqs := receiver(t)
		s, err := New(prepared(t, Config{URL: srv.URL, Compression: comp}), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		s.Close()
		r := reqs()[0]
		wantEnc := map[string]string{CompressZstd: "zstd", CompressNone: ""}[comp]
		if r.header.Get("Content-Encoding") != wantEnc || r.header.Get("Content-Type") != "text/csv" || string(r.body) != "s,n\n"+string(b.Data) {
			t.Errorf("%s: %v %q", comp, r.header, r.body)
		}
	}
}

func TestStatusClasses(t *testing.T) {
	b := sinktest.Batch(t0, 1)
	for _, tc := range []struct {
		code               int
		rejected, retryAft bool
	}{
		{429, false, true}, {500, false, false}, {503, false, false}, {408, false, false},
		{400, true, false}, {401, true, false}, {403, true, false}, {404, true, false}, {413, true, false},
	} {
		srv, _ := receiver(t, tc.code)
		err := send(t, Config{URL: srv.URL + "/p?token=SECRET"}, b)
		if err == nil {
			t.Fatalf("%d: no error", tc.code)
		}
		if sink.IsRejected(err) != tc.rejected {
			t.Errorf("%d: rejected=%v, want %v (%v)", tc.code, sink.IsRejected(err), tc.rejected, err)
		}
		d, ok := sink.RetryAfter(err)
		if ok != tc.retryAft || (ok && d != 7*time.Second) {
			t.Errorf("%d: retry-after %v %v", tc.code, d, ok)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%d: error shows the query: %v", tc.code, err)
		}
	}
	// A network error: nothing listens any more.
	srv, _ := receiver(t)
	u := srv.URL + "/p?token=SECRET"
	srv.Close()
	err := send(t, Config{URL: u}, b)
	if err == nil || sink.IsRejected(err) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("connection refused: %v", err)
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if d, ok := retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); !ok || d != 90*time.Second {
		t.Fatalf("got %v %v", d, ok)
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Fatal("accepted garbage")
	}
}

func TestTLSOptions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := t.TempDir() + "/ca.pem"
	var pemBuf bytes.Buffer
	pemEncode(&pemBuf, srv.Certificate().Raw)
	if err := os.WriteFile(ca, pemBuf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	b := sinktest.Batch(t0, 1)
	if err := send(t, Config{URL: srv.URL}, b); err == nil || sink.IsRejected(err) {
		t.Fatalf("unknown CA accepted (or rejected for good): %v", err)
	}
	if err := send(t, Config{URL: srv.URL, TLS: sink.TLSConfig{CAFile: ca}}, b); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	if err := send(t, Config{URL: srv.URL, TLS: sink.TLSConfig{InsecureSkipVerify: true}}, b); err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
}

func pemEncode(w io.Writer, der []byte) {
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// prepared is c defaulted and validated, as New expects it.
func prepared(t testing.TB, c Config) Config {
	t.Helper()
	if err := cfgerr.Prepare(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRedirects: a 307 or 308 is followed with the POST and its body (the
// batch arrives); after a 301, 302 or 303 the client would send a GET
// without the records, and a 200 to that GET once counted the batch as
// delivered: now the 3xx is the answer, and the batch is refused.
func TestRedirects(t *testing.T) {
	b := sinktest.Batch(t0, 3)
	for _, code := range []int{301, 302, 303, 307, 308} {
		var mu sync.Mutex
		var posted [][]byte
		var gets int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/new", code)
				return
			}
			raw, _ := io.ReadAll(r.Body)
			mu.Lock()
			if r.Method == http.MethodPost {
				posted = append(posted, raw)
			} else {
				gets++
			}
			mu.Unlock()
		}))
		err := send(t, Config{URL: srv.URL + "/old", Compression: "none"}, b)
		srv.Close()
		mu.Lock()
		n, g := len(posted), gets
		var body []byte
		if n > 0 {
			body = posted[0]
		}
		mu.Unlock()
		switch code {
		case 307, 308:
			if err != nil || n != 1 || !bytes.Equal(body, b.Data) {
				t.Errorf("%d: err %v, %d POSTs at the new URL (want 1 with the batch)", code, err, n)
			}
		default:
			if err == nil || !sink.IsRejected(err) || n != 0 || g != 0 {
				t.Errorf("%d: err %v (rejected %v), %d POSTs and %d GETs at the new URL; want the batch refused and nothing sent on", code, err, sink.IsRejected(err), n, g)
			}
		}
	}
}

// TestRedirectToAnotherHostDropsTheHeaders: the configured headers (API
// keys) go along a 307 or 308 to the same host, but not to another one
// (here another port): Go's client drops only Authorization and Cookie,
// and only for another domain.
func TestRedirectToAnotherHostDropsTheHeaders(t *testing.T) {
	b := sinktest.Batch(t0, 3)
	var mu sync.Mutex
	var seen []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/new", http.StatusTemporaryRedirect)
		case "/other":
			http.Redirect(w, r, other.URL+"/new", http.StatusPermanentRedirect)
		default:
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
		}
	}))
	defer srv.Close()
	headers := map[string]string{"DD-API-KEY": "dd-secret", "x-api-key": "key-secret", "Authorization": "Bearer tok-secret", "Content-Type": "text/plain"}
	for _, tc := range []struct {
		path string
		kept bool
	}{{"/same", true}, {"/other", false}} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		if err := send(t, Config{URL: srv.URL + tc.path, Compression: "none", Headers: headers}, b); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		mu.Lock()
		if len(seen) != 1 {
			t.Fatalf("%s: %d requests at the new URL, want 1", tc.path, len(seen))
		}
		h := seen[0]
		mu.Unlock()
		for _, k := range []string{"DD-API-KEY", "X-Api-Key", "Authorization"} {
			if got := h.Get(k) != ""; got != tc.kept {
				t.Errorf("%s: header %s at the new URL: %v, want %v", tc.path, k, got, tc.kept)
			}
		}
		if ct := h.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("%s: Content-Type %q at the new URL", tc.path, ct)
		}
	}
}
