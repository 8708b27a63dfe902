package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/testpeer"
)

// The shutdown totals name the connections each limit refused.
func TestShutdownTotalsNameLimitRefusals(t *testing.T) {
	origin := testpeer.Echo(t)
	var logs bytes.Buffer
	s, rec, addr := startProxy(t, appYAML("127.0.0.1:0", `{addresses: ["`+origin+`"]}`,
		"limits: {max_connections_per_client: 1}"), withLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	echoOnce(t, dialFrom(t, "127.0.0.1", addr))
	dialFrom(t, "127.0.0.1", addr)
	if e := rec.Terminal(t); e.Type != event.ClientFiltered {
		t.Fatalf("record %s %d, want clientFiltered", e.Type, e.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(logs.Bytes(), []byte("\n")) {
		var l struct {
			Msg          string
			AcceptErrors *uint64           `json:"accept_errors"`
			Refused      map[string]uint64 `json:"refused_app"`
		}
		if json.Unmarshal(line, &l) != nil || l.Msg != "tcp totals" {
			continue
		}
		if l.AcceptErrors == nil || *l.AcceptErrors != 0 || l.Refused["max_connections_per_client"] != 1 {
			t.Fatalf("totals line %s", line)
		}
		return
	}
	t.Fatalf("no tcp totals line in\n%s", logs.String())
}
