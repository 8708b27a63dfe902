// Package gopool runs connection handlers (accept to relay start) on
// goroutines kept for reuse.
//
// A new goroutine starts on a 2 KiB stack, and the runtime gives a dead
// goroutine's stack back unless it is that size, so every connection
// handler grew its stack again through the dial (net.Dialer, TLS): the
// runtime's morestack/copystack was 3-5 % of prism's CPU per short
// connection (perf, docs/benchmarks.md), and a task that needs 16 KiB
// costs 12 µs started with go against 3 µs here (BenchmarkTask). A worker
// keeps the stack it grew; it takes the next task through an unbuffered
// channel (a direct hand-over to a waiting worker, no queue) and exits
// after idleTimeout without one, so a burst leaves no goroutines behind
// for long.
//
// Relay directions do not use it: a direction waits up to 50 ms for data
// on its goroutine before it parks, and on a worker's grown stack those
// waits held 16 KiB each instead of 2 KiB; opening 5,000 connections then
// left 2 KiB more per connection in the proxy's memory.
package gopool

import (
	"sync/atomic"
	"time"
)

// idleTimeout is how long a worker waits for another task before it
// exits. Under load the next task comes within microseconds; a worker
// idle for a second holds a grown stack (8-16 KiB) for nothing.
const idleTimeout = time.Second

// tasks hands a task to a worker waiting for one; unbuffered, so Go
// never queues: a task runs at once on a waiting worker or a new one.
var tasks = make(chan func())

// waiting counts the workers waiting for a task.
var waiting atomic.Int64

// Idle returns how many workers wait for a task right now: goroutines
// that belong to no connection (tests that count a connection's
// goroutines leave them out).
func Idle() int { return int(waiting.Load()) }

// Go runs f on a waiting worker, or on a new goroutine that becomes a
// worker once f returns. f must not wait for long (the worker keeps its
// stack while it waits).
func Go(f func()) {
	select {
	case tasks <- f:
	default:
		go work(f)
	}
}

func work(f func()) {
	f()
	t := time.NewTimer(idleTimeout)
	for {
		waiting.Add(1)
		select {
		case f = <-tasks:
			waiting.Add(-1)
			f()
			t.Reset(idleTimeout)
		case <-t.C:
			waiting.Add(-1)
			return
		}
	}
}
