package proxy

import "time"

// Pacing of accept failures (EMFILE, ENFILE, ENOBUFS...).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// acceptQuiet is how long accepts must go without an error before the
	// backoff starts again from acceptBackoffMin. At the descriptor limit
	// every closed connection lets one accept through, so resetting on the
	// first success would retry (and log) hundreds of times a second.
	acceptQuiet = 2 * time.Second
	// acceptLogEvery is the least time between two "accept failed" lines
	// of one listener; each says how many failures it stands for.
	acceptLogEvery = 10 * time.Second
)

// acceptErrors paces one listener's accept failures: the backoff to wait
// before the next accept, and whether to log this one. It is used by the
// listener's accept goroutine only.
type acceptErrors struct {
	backoff time.Duration
	lastErr time.Time
	lastLog time.Time
	since   int // failures since the last logged line, this one included
}

// failed records a failure at now. It returns how long to wait, and
// whether to log; n is then the number of failures the line stands for.
func (e *acceptErrors) failed(now time.Time) (wait time.Duration, log bool, n int) {
	if e.lastErr.IsZero() || now.Sub(e.lastErr) > acceptQuiet {
		e.backoff = acceptBackoffMin
	} else {
		e.backoff = min(e.backoff*2, acceptBackoffMax)
	}
	e.lastErr = now
	e.since++
	if e.lastLog.IsZero() || now.Sub(e.lastLog) >= acceptLogEvery {
		n, e.since, e.lastLog = e.since, 0, now
		return e.backoff, true, n
	}
	return e.backoff, false, 0
}
