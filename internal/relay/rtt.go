package relay

import (
	"net"
	"time"
)

// RTT returns the TCP_INFO smoothed RTT of a TCP conn, or of the TCP conn
// under a wrapper that exposes it with NetConn() (*tls.Conn, PROXY protocol
// conns). It is 0 for unix sockets and anything else.
func RTT(c net.Conn) time.Duration {
	rc := tcpRawConn(c)
	if rc == nil {
		return 0
	}
	var d time.Duration
	_ = rc.Control(func(fd uintptr) { d = fdRTT(int(fd)) })
	return d
}

// RTT sampling: each direction keeps the TCP_INFO smoothed RTT of its
// source leg, refreshed at most every rttEvery while bytes move and once
// more at the end, and publishes it to the Live counters.

// rttEvery is how often a direction that is moving bytes refreshes the RTT
// sample of its source leg in the Live counters.
const rttEvery = time.Second

// sampleRTT refreshes the RTT sample of src (TCP only).
func (h *half) sampleRTT(now time.Time) {
	h.rttAt = now.UnixNano()
	if h.rttRaw != nil {
		_ = h.rttRaw.Control(h.tcpInfo)
	}
}

// startRTT takes the caller's sample d of src, or samples now if there is
// none.
func (h *half) startRTT(d time.Duration, now time.Time) {
	if d <= 0 {
		h.sampleRTT(now)
		return
	}
	// A caller's sample is kept even when this relay cannot reach the
	// socket itself: a later sample never replaces a real one with 0.
	h.rttAt = now.UnixNano()
	h.rtt.Store(int64(d))
	if lr := h.liveRTT(); lr != nil {
		lr.Store(int64(d))
	}
}

func (h *half) tcpInfo(fd uintptr) {
	if d := fdRTT(int(fd)); d > 0 {
		h.rtt.Store(int64(d))
		if lr := h.liveRTT(); lr != nil {
			lr.Store(int64(d))
		}
	}
}

// finalRTT returns the last known RTT of src, sampling once more (the
// conn is still open) unless the last sample is less than rttEvery old:
// a short connection then costs no TCP_INFO read at its end.
func (h *half) finalRTT() time.Duration {
	if now := time.Now(); time.Duration(now.UnixNano()-h.rttAt) >= rttEvery || h.rtt.Load() == 0 {
		h.sampleRTT(now)
	}
	return time.Duration(h.rtt.Load())
}
