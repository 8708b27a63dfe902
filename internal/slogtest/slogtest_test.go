package slogtest

import (
	"strings"
	"sync"
	"testing"
)

func TestRecordsAndText(t *testing.T) {
	logger, b := JSON(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { logger.Info("dropped", "n", i) })
	}
	wg.Wait()
	logger.Info("other", "n", 99)
	logger.Debug("dropped", "n", 100) // below info: not written
	recs := b.Records("dropped")
	if len(recs) != 10 {
		t.Fatalf("%d records, want 10:\n%s", len(recs), b)
	}
	sum := 0.0
	for _, r := range recs {
		sum += r["n"].(float64)
	}
	if sum != 45 {
		t.Fatalf("sum of n = %v, want 45", sum)
	}

	text, tb := Text(t)
	text.Debug("tls: reloaded", "source", "certificates[0]")
	if s := tb.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, `msg="tls: reloaded" source=certificates[0]`) {
		t.Fatalf("text log %q", s)
	}
	if len(tb.Records("tls: reloaded")) != 0 {
		t.Fatal("text lines decoded as JSON records")
	}
}
