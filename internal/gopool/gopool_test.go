package gopool

import (
	"runtime"
	"sync"
	"testing"
)

// TestRunsEveryTask checks that every task runs exactly once, from many
// goroutines at once, whether a worker waits or not.
func TestRunsEveryTask(t *testing.T) {
	const n = 10000
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make([]int, n)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				wg.Add(1)
				Go(func() {
					mu.Lock()
					seen[i]++
					mu.Unlock()
					wg.Done()
				})
			}
		}()
	}
	wg.Wait()
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("task %d ran %d times", i, c)
		}
	}
}

// TestReusesWorkers checks that sequential tasks run on one kept
// goroutine, with its grown stack, instead of a new one each.
func TestReusesWorkers(t *testing.T) {
	done := make(chan struct{})
	Go(func() { done <- struct{}{} })
	<-done
	before := runtime.NumGoroutine()
	for range 100 {
		Go(func() {
			var deep func(int) int
			deep = func(k int) int {
				var pad [256]byte
				if k == 0 {
					return int(pad[0])
				}
				return deep(k-1) + int(pad[k%256])
			}
			_ = deep(64) // grows the stack past 16 KiB
			done <- struct{}{}
		})
		<-done
	}
	// The worker that ran the first task may not be waiting yet when the
	// next task comes; a few new workers are fine, one per task is not.
	if got := runtime.NumGoroutine(); got > before+5 {
		t.Fatalf("%d goroutines after 100 sequential tasks, %d before: workers are not reused", got, before)
	}
}

//go:noinline
func deep(k int) int {
	var pad [256]byte
	pad[k%256] = byte(k)
	if k == 0 {
		return int(pad[0])
	}
	return deep(k-1) + int(pad[(k+1)%256])
}

// BenchmarkTask compares a task that needs a 16 KiB stack (as a
// connection handler does through the dial) started with a go statement
// and with Go.
func BenchmarkTask(b *testing.B) {
	done := make(chan struct{})
	task := func() { _ = deep(48); done <- struct{}{} }
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			go task()
			<-done
		}
	})
	b.Run("gopool", func(b *testing.B) {
		for b.Loop() {
			Go(task)
			<-done
		}
	})
}
