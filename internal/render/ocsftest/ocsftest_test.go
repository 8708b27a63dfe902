package ocsftest

import (
	"os"
	"sync"
	"testing"
)

func record(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidateConcurrent: Validate is called from parallel tests on the one
// shared Schema, and it loads object definitions lazily; a fresh schema
// validating from several goroutines at once must not race (run with
// -race).
func TestValidateConcurrent(t *testing.T) {
	s, err := load()
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t, "disconnect.json")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if probs := s.Validate(rec); len(probs) > 0 {
				t.Error(probs)
			}
		})
	}
	wg.Wait()
}
