package sink

import (
	"context"
	"errors"
	"time"
)

// Sender delivers one batch to a remote destination (an HTTP endpoint, an
// object store, a Kafka topic). Unlike a Destination it may fail for a
// while: the delivery layer (internal/deliver) keeps the batch, spooled or
// in memory, and calls Send again with backoff until it succeeds, until the
// destination refuses the batch for good (a Rejected error), or until
// shutdown. Send must return when ctx is done. It is called from one
// goroutine at a time and must not keep b after it returns.
type Sender interface {
	Send(ctx context.Context, b *Batch) error
	// Close releases connections; no Send follows.
	Close() error
}

// RejectedError says the destination refused the batch and sending it again
// cannot help (an HTTP 400, 401, 403, 404, 413...). The batch is counted as
// rejected and kept aside (in the spool's dead-letter directory).
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Rejected wraps err as a RejectedError.
func Rejected(err error) error { return &RejectedError{Err: err} }

// RetryAfterError is a temporary refusal that says when to try again (an
// HTTP 429 or 503 with Retry-After).
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// IsRejected reports whether err is (or wraps) a RejectedError.
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

// RetryAfter returns the wait a RetryAfterError asks for, if err holds one.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}
