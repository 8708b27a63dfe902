package proxy

import (
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/limit"
	"github.com/prismproxy/prism/internal/origin"
)

// What the external tests (package proxy_test) read of a server's inside.

// PoolOf is the server's origin pool.
func PoolOf(s *Server) *origin.Pool { return s.app.pool }

// LimiterOf is the server's per-client limiter (nil: none).
func LimiterOf(s *Server) *limit.Limiter { return s.app.lim }

// AddrPortOf is addrPortOf.
var AddrPortOf = addrPortOf

// RawListeners counts the server's listeners on the raw path.
func RawListeners(s *Server) (n int) {
	for _, l := range s.app.listeners {
		if l.acc != nil {
			n++
		}
	}
	return n
}

// Tracked counts the connections the server is handling.
func Tracked(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// SetInlineHandlers makes raw-path accept loops handle connections
// themselves (on) or on goroutines of their own, whatever GOMAXPROCS;
// restore puts the default back. Not for parallel tests.
func SetInlineHandlers(on bool) (restore func()) {
	v := int32(2)
	if on {
		v = 1
	}
	prev := inlineForced.Swap(v)
	return func() { inlineForced.Store(prev) }
}

// SessionIDs are the ids of the connections the server is handling.
func SessionIDs(s *Server) []event.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []event.ID
	for ss := range s.sessions {
		ids = append(ids, ss.id)
	}
	return ids
}
