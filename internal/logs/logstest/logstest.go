// Package logstest makes log files the way prism's log jobs write them, for
// the tests of internal/logs and for the benchmarks: synthetic sessions of
// every event type (TCP, UDP and unix; TLS and not; firewall on and off),
// rendered by the live renderers with the deltas a log job computes.
package logstest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// Node is the node identity of the generated records.
var Node = render.Node{Colo: "SJC", ID: "sjc-edge-1", RegionName: "San Jose (CA)"}

var countries = []string{"GB", "US", "DE", "JP", "BR", ""}
var apps = []string{"ssh", "game-udp", "db", "web-tls"}

// Sessions returns the events of n sessions, in the order a log job
// receives them (each session's records in order, sessions interleaved),
// seeded so that the same seed gives the same events.
func Sessions(n int, seed uint64) []event.Event {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var open [][]event.Event
	var out []event.Event
	for i := range n {
		start := t0.Add(time.Duration(i) * 37 * time.Millisecond).Add(time.Duration(rng.IntN(1000)) * time.Microsecond)
		open = append(open, session(rng, i, start))
		// interleave: flush a random open session's records
		for len(open) > 4 || (i == n-1 && len(open) > 0) {
			k := rng.IntN(len(open))
			out = append(out, open[k]...)
			open = append(open[:k], open[k+1:]...)
		}
	}
	return out
}

func session(rng *rand.Rand, i int, start time.Time) []event.Event {
	app := apps[i%len(apps)]
	e := event.New(app, event.NewID(start))
	e.StartTime = start
	e.Time = start
	e.ClientProto, e.OriginProto = event.ProtoTCP, event.ProtoTCP
	switch {
	case app == "game-udp":
		e.ClientProto, e.OriginProto = event.ProtoUDP, event.ProtoUDP
	case i%29 == 7:
		e.ClientProto, e.OriginProto = event.ProtoUnix, event.ProtoUnix
	}
	if e.ClientProto != event.ProtoUnix {
		var ip netip.Addr
		if i%5 == 0 {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		} else {
			ip = netip.AddrFrom4([4]byte{81, 2, byte(69 + i%7), byte(i % 250)})
		}
		e.ClientAddr = netip.AddrPortFrom(ip, uint16(20000+rng.IntN(40000)))
		e.PeerAddr = e.ClientAddr
		e.LocalAddr = netip.MustParseAddrPort("127.0.0.1:8000")
		e.Country = countries[i%len(countries)]
		if e.Country != "" {
			e.ASN = uint32(64500 + i%9)
		}
	} else {
		e.ClientPath = "/run/prism/app.sock"
	}
	if e.ClientProto == event.ProtoTCP {
		e.ClientRTT = time.Duration(100+rng.IntN(5000)) * time.Microsecond
	}
	if app == "web-tls" {
		e.TLSMode = "full"
		e.ClientTLS = event.TLS{Protocol: "TLSv1.3", Cipher: "AEAD-AES128-GCM-SHA256", Status: "OK", ServerName: "web.example.com"}
	}
	if i%3 == 0 {
		e.Firewall = true
		e.FirewallMatch = event.FirewallWhitelistCountry
	}
	if i%11 == 5 {
		e.Detail = `dial tcp 10.0.0.9:5432: connect: "refused", really` + "\t!"
	}
	e.ProxyProtocol = []string{"off", "v1", "v2", "simple"}[i%4]

	kind := i % 17
	var evs []event.Event
	fail := func(t event.Type, status int) []event.Event {
		e.Type, e.Status = t, status
		e.Time = start.Add(time.Duration(1+rng.IntN(50)) * time.Millisecond)
		e.DisconnectTime = e.Time
		switch t {
		case event.ClientFiltered:
			e.FirewallMatch = event.FirewallBlockCountry
			e.Firewall = true
		case event.ResolveOrigin:
			e.OriginName = "db.internal.example"
		case event.OriginError:
			e.OriginAddr = originOf(e)
			e.CloseSide, e.CloseReason = event.SideOrigin, event.ReasonCreatePeer
		}
		if e.ClientTLS.Protocol != event.TLSProtocolNone && t == event.TLSError {
			e.ClientTLS.Status = "HANDSHAKE_FAILED"
		}
		return []event.Event{e}
	}
	switch kind {
	case 1:
		return fail(event.ClientFiltered, event.StatusFiltered)
	case 2:
		if app == "web-tls" {
			return fail(event.TLSError, event.StatusClientHandshake)
		}
		return fail(event.ResolveOrigin, event.StatusResolveFailed)
	case 3:
		return fail(event.OriginError, event.StatusOriginConnRefused)
	}
	e.OriginAddr = originOf(e)
	if e.ClientProto == event.ProtoUnix {
		e.OriginAddr, e.OriginPath = netip.AddrPort{}, "/run/origin.sock"
	}
	if app == "web-tls" {
		e.OriginTLS = event.TLS{Protocol: "TLSv1.2", Cipher: "ECDHE-RSA-AES128-GCM-SHA256", Status: "OK",
			ServerName: "origin.internal", Fingerprint: strings.Repeat(fmt.Sprintf("%02x", i%256), 32)}
	}
	e.OriginRTT = e.ClientRTT / 2
	e.ConnectTime = start.Add(time.Duration(1+rng.IntN(3)) * time.Millisecond)
	e.Type, e.Status, e.Time = event.Connect, event.StatusConnect, e.ConnectTime
	evs = append(evs, e)
	// periodic records
	now := e.ConnectTime
	for range rng.IntN(3) {
		now = now.Add(time.Duration(1+rng.IntN(30)) * time.Second)
		e.ClientBytes += int64(rng.IntN(100000))
		e.OriginBytes += int64(rng.IntN(1000000))
		e.Type, e.Status, e.Time = event.Interim, event.StatusConnect, now
		evs = append(evs, e)
	}
	now = now.Add(time.Duration(rng.IntN(20000)) * time.Millisecond)
	e.ClientBytes += int64(rng.IntN(100000))
	e.OriginBytes += int64(rng.IntN(1000000))
	e.Type, e.Time, e.DisconnectTime = event.Disconnect, now, now
	switch kind {
	case 4:
		e.Status, e.CloseSide, e.CloseReason = event.StatusClientReset, event.SideClient, event.ReasonPeerError
	case 5:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOriginReset, event.SideOrigin, event.ReasonPeerError
	case 6:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOK, event.SideProxy, event.ReasonTimeout
	case 7:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOK, event.SideProxy, event.ReasonClosed
	case 8:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOriginTimeout, event.SideOrigin, event.ReasonTimeout
	case 9:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOK, event.SideOrigin, event.ReasonPeerClose
	default:
		e.Status, e.CloseSide, e.CloseReason = event.StatusOK, event.SideClient, event.ReasonPeerClose
	}
	return append(evs, e)
}

func originOf(e event.Event) netip.AddrPort {
	if e.ClientProto == event.ProtoUDP {
		return netip.MustParseAddrPort("127.0.0.1:5353")
	}
	return netip.MustParseAddrPort("[2001:db8::7]:22")
}

// Render writes events as a log job of dataset would: only the records the
// dataset wants, with the deltas since the session's previous record for
// periodic datasets.
func Render(dataset string, events []event.Event, opt render.Options) ([]byte, error) {
	enc, err := render.NewEncoder(dataset, Node, opt)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), enc.Header()...)
	last := map[event.ID][2]int64{}
	for i := range events {
		e := events[i]
		if render.Periodic(dataset) {
			l := last[e.SessionID]
			e.ClientBytesDelta, e.OriginBytesDelta = e.ClientBytes-l[0], e.OriginBytes-l[1]
			if e.Type.Terminal() {
				delete(last, e.SessionID)
			} else if enc.Wants(e.Type) {
				last[e.SessionID] = [2]int64{e.ClientBytes, e.OriginBytes}
			}
		}
		if enc.Wants(e.Type) {
			out = enc.Append(out, &e)
		}
	}
	return out, nil
}
