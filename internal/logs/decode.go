package logs

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// Decoded is one vendor record read back into canonical terms: the event,
// the node identity and envelope values the record carries, and which
// fields it had.
type Decoded struct {
	Event event.Event
	Node  render.Node
	// CC holds the cloudconnexa envelope (cloudId, service, category).
	CC render.CloudConnexaConfig
	// Trace is the cloudconnexa traceId, when the record had a valid one.
	Trace    [16]byte
	HasTrace bool
	// TS is the Spectrum timestamp format the record was written in;
	// TSKnown is false when every timestamp was 0.
	TS      render.TimestampFormat
	TSKnown bool
	// fields is the set of dataset fields present (bit i: field i of
	// render.FieldNames).
	fields uint64
	// sessionKnown reports that the record carried its own session id
	// (Spectrum records have none; one is derived).
	sessionKnown bool
}

// problem is one thing wrong with a record. A lenient problem is a
// deviation from the vendor schema that still reads unambiguously (a
// number written as a string, a value outside a documented enumeration):
// verify reports it, the other commands use the value.
type problem struct {
	field   string
	msg     string
	lenient bool
}

func (p problem) String() string {
	if p.field == "" {
		return p.msg
	}
	return p.field + ": " + p.msg
}

// decoder reads records of one dataset.
type decoder struct {
	dataset string
	names   []string
	kinds   []render.Kind
	index   map[string]int
	sc      scanner
	ms      []member
	logMs   []member
	probs   []problem
	intern  map[string]string
	// csv state
	colIdx []int
	// order lists the fields of the last record in the order they came.
	order []int
	// prefix names the object being read in problems ("log.").
	prefix string
	// need marks the fields whose values are used (bit i: field i); the
	// others are only checked for their JSON type. filter reads only what
	// its conditions name.
	need uint64
	// Records of one file mostly repeat the previous record's keys in the
	// same order and many of its values: prevKeys[n] is the key of the
	// n-th member of the previous record (and prevIdx its field index),
	// lastStr[i] the last string value read for field i.
	prevKeys [][]byte
	prevIdx  []int
	pos      int
	lastStr  []string
	lastOK   []string // the last value of field i that was in its enumeration
	cur      int      // field index of the member being read (-1: none)
}

func newDecoder(dataset string) (*decoder, error) {
	switch dataset {
	case render.Spectrum, render.EdgeOne, render.CloudConnexa:
	default:
		return nil, fmt.Errorf("cannot read dataset %q (want one of %s, %s, %s)", dataset, render.Spectrum, render.EdgeOne, render.CloudConnexa)
	}
	names, _ := render.FieldNames(dataset)
	kinds, _ := render.FieldKinds(dataset)
	d := &decoder{dataset: dataset, names: names, kinds: kinds, index: map[string]int{}, intern: map[string]string{},
		lastStr: make([]string, len(names)), lastOK: make([]string, len(names)), cur: -1, need: ^uint64(0)}
	for i, n := range names {
		d.index[n] = i
	}
	if dataset == render.CloudConnexa {
		// the client address of the header has three names (§5, seeds 002, 004)
		d.index["clientPublicIp"] = d.index["publicIp"]
		d.index["initiatorPublicIp"] = d.index["publicIp"]
	}
	return d, nil
}

func (d *decoder) bad(field, format string, args ...any) {
	d.probs = append(d.probs, problem{field: d.prefix + field, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warn(field, format string, args ...any) {
	d.probs = append(d.probs, problem{field: d.prefix + field, msg: fmt.Sprintf(format, args...), lenient: true})
}

// hardProblems reports whether any problem stops the record from being used.
func (d *decoder) hardProblems() bool {
	for _, p := range d.probs {
		if !p.lenient {
			return true
		}
	}
	return false
}

const maxIntern = 1 << 14

// str turns bytes into a string, sharing repeated values (app ids, ciphers,
// protocol names) so that reading a record mostly does not allocate.
func (d *decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if d.cur >= 0 && d.lastStr[d.cur] == string(b) {
		return d.lastStr[d.cur]
	}
	s, ok := d.intern[string(b)]
	if !ok {
		s = string(b)
		if len(d.intern) < maxIntern && len(b) <= 64 {
			d.intern[s] = s
		}
	}
	if d.cur >= 0 {
		d.lastStr[d.cur] = s
	}
	return s
}

// decodeJSON reads one ndjson line.
func (d *decoder) decodeJSON(line []byte, out *Decoded) {
	d.probs = d.probs[:0]
	var err error
	d.ms, err = d.sc.object(line, d.ms[:0])
	if err != nil {
		d.bad("", "%v", err)
		return
	}
	d.decodeMembers(d.ms, out)
}

// setCSVHeader maps CSV columns to fields.
func (d *decoder) setCSVHeader(header [][]byte) error {
	d.colIdx = d.colIdx[:0]
	seen := map[string]bool{}
	for _, h := range header {
		name := string(h)
		i, ok := d.index[name]
		if !ok {
			return fmt.Errorf("CSV header: unknown field %q for dataset %s", name, d.dataset)
		}
		if seen[name] {
			return fmt.Errorf("CSV header: field %q appears twice", name)
		}
		seen[name] = true
		d.colIdx = append(d.colIdx, i)
	}
	return nil
}

// decodeCSV reads one CSV row, typing each cell by its field's kind: an
// integer or bool field's cell is a number or bool when it reads as one
// (otherwise it stays a string and is reported as the wrong type), an
// empty cell is null in cloudconnexa (where render writes null as an empty
// cell) and "" elsewhere, the cloudconnexa log cell is a JSON object.
func (d *decoder) decodeCSV(header [][]byte, cells [][]byte, out *Decoded) {
	d.probs = d.probs[:0]
	if len(cells) != len(header) {
		d.bad("", "CSV row has %d cells, the header %d", len(cells), len(header))
		return
	}
	d.ms = d.ms[:0]
	// strings unescaped from a JSON cell (cloudconnexa's log) go to
	// scratch; it must not move while the record is read
	d.sc.scratch = d.sc.scratch[:0]
	for c, cell := range cells {
		k := d.kinds[d.colIdx[c]]
		v := value{kind: vString, b: cell}
		switch {
		case len(cell) == 0 && (d.dataset == render.CloudConnexa || k != render.KindString && k != render.KindTime):
			v.kind = vNull
		case k == render.KindInt || k == render.KindTime:
			if _, err := parseInt(cell); err == nil && (cell[0] == '-' || cell[0] >= '0' && cell[0] <= '9') {
				v.kind = vNumber
			}
		case k == render.KindBool:
			if string(cell) == "true" || string(cell) == "false" {
				v = value{kind: vBool, bl: string(cell) == "true"}
			}
		case k == render.KindObject:
			v.kind = vObject
			// check that the cell is one JSON object and nothing else;
			// nested() reads its members afterwards
			if cap(d.sc.scratch) < 2*len(cell) {
				d.sc.scratch = make([]byte, 0, 2*len(cell))
			}
			var err error
			if d.logMs, err = d.sc.object(cell, d.logMs[:0]); err != nil {
				d.bad(string(header[c]), "%v", err)
				return
			}
		}
		d.ms = append(d.ms, member{key: header[c], val: v})
	}
	d.decodeMembers(d.ms, out)
}

func (d *decoder) decodeMembers(ms []member, out *Decoded) {
	// every field at its zero value, TLS legs at "no TLS" (event.New's
	// other defaults are left "": a record that lacks them renders them
	// as the target writes unknown)
	*out = Decoded{}
	out.Event.ClientTLS, out.Event.OriginTLS = event.NoTLS, event.NoTLS
	d.order = d.order[:0]
	d.pos, d.cur = 0, -1
	switch d.dataset {
	case render.Spectrum:
		d.spectrum(ms, out)
	case render.EdgeOne:
		d.edgeone(ms, out)
	case render.CloudConnexa:
		d.cloudconnexa(ms, out)
	}
}

// mark records that field key is present; unknown fields are problems.
func (d *decoder) mark(key []byte, out *Decoded) bool {
	var i int
	ok := true
	if d.pos < len(d.prevKeys) && bytes.Equal(d.prevKeys[d.pos], key) {
		i = d.prevIdx[d.pos]
	} else {
		i, ok = d.index[string(key)]
		// Cache the key at its position, unless an unknown field before it
		// left a gap (the cache is by position).
		if ok && d.pos <= len(d.prevKeys) {
			d.prevKeys = append(d.prevKeys[:d.pos], append([]byte(nil), key...))
			d.prevIdx = append(d.prevIdx[:d.pos], i)
		}
	}
	d.pos++
	d.cur = -1
	if !ok {
		d.bad(string(key), "unknown field for dataset %s", d.dataset)
		return false
	}
	if out.fields&(1<<uint(i)) != 0 {
		d.bad(string(key), "field appears twice")
		return false
	}
	out.fields |= 1 << uint(i)
	d.order = append(d.order, i)
	d.cur = i
	return true
}

// needed reports whether the current field's value is used; when it is
// not, it checks only the field's JSON type.
func (d *decoder) needed(m *member) bool {
	if d.need&(1<<uint(d.cur)) != 0 {
		return true
	}
	k, want := m.val.kind, vString
	switch d.kinds[d.cur] {
	case render.KindInt:
		want = vNumber
	case render.KindBool:
		want = vBool
	case render.KindObject:
		want = vObject
	case render.KindTime:
		if k == vNumber {
			want = vNumber
		}
	}
	if k != want {
		d.bad(string(m.key), "want %s, got %s", want, k)
	}
	return false
}

// needOnly restricts decoding to the named fields (unknown names are
// ignored: the filter compiler reports them).
func (d *decoder) needOnly(names []string) {
	d.need = 0
	for _, n := range names {
		if i, ok := d.index[n]; ok {
			d.need |= 1 << uint(i)
		}
	}
}

// Typed readers. Each reports a problem naming the field when the JSON
// type is wrong.

// recordFields returns the field names of the last record, in its order.
func (d *decoder) recordFields() []string {
	out := make([]string, len(d.order))
	for i, n := range d.order {
		out[i] = d.names[n]
	}
	return out
}

// rawStrings sets raw[i] to the text of field i for each field of the last
// record that is a string in the file (a CSV cell, unless an empty
// cloudconnexa one, which is null), and returns the mask of those fields.
// The texts stay valid until the next record is read.
func (d *decoder) rawStrings(raw [][]byte) ([][]byte, uint64) {
	if cap(raw) < len(d.names) {
		raw = make([][]byte, len(d.names))
	}
	raw = raw[:len(d.names)]
	var has uint64
	if len(d.order) != len(d.ms) {
		return raw, 0 // not a good record: every member marks a field
	}
	for j := range d.ms {
		if v := &d.ms[j].val; v.kind == vString {
			i := d.order[j]
			raw[i] = v.b
			has |= 1 << uint(i)
		}
	}
	return raw, has
}

func (d *decoder) getStr(m *member) (string, bool) {
	if m.val.kind != vString {
		d.bad(string(m.key), "want a string, got %s", m.val.kind)
		return "", false
	}
	return d.str(m.val.b), true
}

// getStrNull reads a string that may be null.
func (d *decoder) getStrNull(m *member) (string, bool, bool) {
	if m.val.kind == vNull {
		return "", true, true
	}
	s, ok := d.getStr(m)
	return s, false, ok
}

func (d *decoder) getInt(m *member) (int64, bool) {
	switch m.val.kind {
	case vNumber:
		n, err := parseInt(m.val.b)
		if err != nil {
			d.bad(string(m.key), "want an integer, got %s", m.val.b)
			return 0, false
		}
		return n, true
	case vString:
		// "6" for 6: seed 004 writes the protocol number as a string
		if n, err := strconv.ParseInt(string(m.val.b), 10, 64); err == nil {
			d.warn(string(m.key), "an integer written as a string (%q)", m.val.b)
			return n, true
		}
	}
	d.bad(string(m.key), "want an integer, got %s", m.val.kind)
	return 0, false
}

func (d *decoder) getBool(m *member) (bool, bool) {
	if m.val.kind != vBool {
		d.bad(string(m.key), "want a bool, got %s", m.val.kind)
		return false, false
	}
	return m.val.bl, true
}

// getEnum reads a string that must be one of allowed ("" when it is not a
// string; a value outside allowed is reported and kept).
func (d *decoder) getEnum(m *member, allowed map[string]bool) string {
	s, ok := d.getStr(m)
	if ok {
		d.enum(m, s, allowed)
	}
	return s
}

func (d *decoder) enum(m *member, s string, allowed map[string]bool) {
	if d.cur >= 0 && d.lastOK[d.cur] == s && s != "" {
		return // the value the previous record had in this field, checked then
	}
	if allowed[s] {
		if d.cur >= 0 {
			d.lastOK[d.cur] = s
		}
	} else {
		d.warn(string(m.key), "%q is not one of the documented values", s)
	}
}

func (d *decoder) getAddr(m *member, s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.bad(string(m.key), "%q is not an IP address", s)
		return netip.Addr{}
	}
	return a
}

// getIP reads a string field holding an IP address or "" (alt, when
// given, is also none: EdgeOne's "-").
func (d *decoder) getIP(m *member, alt ...string) netip.Addr {
	if m.val.kind != vString {
		d.bad(string(m.key), "want a string, got %s", m.val.kind)
		return netip.Addr{}
	}
	b := m.val.b
	if len(b) == 0 || len(alt) > 0 && string(b) == alt[0] {
		return netip.Addr{}
	}
	if a, ok := parseIPv4(b); ok {
		return a
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		d.bad(string(m.key), "%q is not an IP address", b)
		return netip.Addr{}
	}
	return a
}

// parseIPv4 parses dotted-quad IPv4 without making a string.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	n, oct, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n > 3 {
				return netip.Addr{}, false
			}
			ip[n] = byte(oct)
			n++
			oct, digits = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || digits > 0 && oct == 0 {
			return netip.Addr{}, false // not a digit, or a leading zero
		}
		oct = oct*10 + int(c-'0')
		digits++
		if oct > 255 {
			return netip.Addr{}, false
		}
	}
	if n != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

func (d *decoder) getPort(m *member) uint16 {
	n, ok := d.getInt(m)
	if !ok {
		return 0
	}
	if n < 0 || n > 65535 {
		d.bad(string(m.key), "port %d is outside 0..65535", n)
		return 0
	}
	return uint16(n)
}

// ---- spectrum_events -------------------------------------------------

// Field indexes of spectrum_events (render's order; checked in init).
const (
	spApplication = iota
	spClientAsn
	spClientBytes
	spClientCountry
	spClientIP
	spClientMatchedIpFirewall
	spClientPort
	spClientProto
	spClientTcpRtt
	spClientTlsCipher
	spClientTlsClientHelloServerName
	spClientTlsProtocol
	spClientTlsStatus
	spColoCode
	spConnectTimestamp
	spDisconnectTimestamp
	spEvent
	spIpFirewall
	spOriginBytes
	spOriginIP
	spOriginPort
	spOriginProto
	spOriginTcpRtt
	spOriginTlsCipher
	spOriginTlsFingerprint
	spOriginTlsMode
	spOriginTlsProtocol
	spOriginTlsStatus
	spProxyProtocol
	spStatus
	spTimestamp
)

// Unix seconds below this are read as seconds, above as nanoseconds: no
// nanosecond timestamp after 1970-01-02 is that small, no seconds one
// before the year 5138 that large.
const secondsLimit = 1e11

func (d *decoder) spectrumTime(m *member, out *Decoded) time.Time {
	switch m.val.kind {
	case vNumber:
		n, err := parseInt(m.val.b)
		if err != nil || n < 0 {
			d.bad(string(m.key), "want an integer timestamp, got %s", m.val.b)
			return time.Time{}
		}
		if n == 0 {
			return time.Time{}
		}
		f := render.UnixNano
		var t time.Time
		if n < secondsLimit {
			f, t = render.Unix, time.Unix(n, 0)
		} else {
			t = time.Unix(0, n)
		}
		d.tsFormat(m, out, f)
		return t.UTC()
	case vString:
		t, err := time.Parse(time.RFC3339, string(m.val.b))
		if err != nil {
			d.bad(string(m.key), "%q is not an RFC 3339 timestamp", m.val.b)
			return time.Time{}
		}
		d.tsFormat(m, out, render.RFC3339)
		if t.Unix() == 0 {
			return time.Time{}
		}
		return t.UTC()
	}
	d.bad(string(m.key), "want a timestamp (integer or RFC 3339 string), got %s", m.val.kind)
	return time.Time{}
}

func (d *decoder) tsFormat(m *member, out *Decoded, f render.TimestampFormat) {
	if out.TSKnown && out.TS != f {
		d.bad(string(m.key), "timestamps of one record in different formats")
	}
	out.TS, out.TSKnown = f, true
}

func (d *decoder) spectrum(ms []member, out *Decoded) {
	e := &out.Event
	var clientIP, originIP netip.Addr
	var clientPort, originPort uint16
	typeSet := false
	for i := range ms {
		m := &ms[i]
		if !d.mark(m.key, out) || !d.needed(m) {
			continue
		}
		switch d.cur {
		case spApplication:
			e.App, _ = d.getStr(m)
		case spClientAsn:
			if n, ok := d.getInt(m); ok {
				if n < 0 || n > 1<<32-1 {
					d.bad("ClientAsn", "%d is not an AS number", n)
				}
				e.ASN = uint32(n)
			}
		case spClientBytes:
			e.ClientBytes, _ = d.getInt(m)
		case spClientCountry:
			if s, ok := d.getStr(m); ok {
				e.Country = strings.ToUpper(s)
				if s != "" && !isCountry(s) {
					d.warn("ClientCountry", "%q is not a two-letter country code", s)
				}
			}
		case spClientIP:
			clientIP = d.getIP(m)
		case spClientMatchedIpFirewall:
			e.FirewallMatch = d.getEnum(m, spectrumFirewall)
		case spClientPort:
			clientPort = d.getPort(m)
		case spClientProto:
			e.ClientProto = d.getEnum(m, spectrumProtos)
		case spClientTcpRtt:
			n, _ := d.getInt(m)
			e.ClientRTT = time.Duration(n)
		case spClientTlsCipher:
			e.ClientTLS.Cipher, _ = d.getStr(m)
		case spClientTlsClientHelloServerName:
			e.ClientTLS.ServerName, _ = d.getStr(m)
		case spClientTlsProtocol:
			e.ClientTLS.Protocol = d.getEnum(m, spectrumTLSProtocols)
		case spClientTlsStatus:
			e.ClientTLS.Status = d.getEnum(m, spectrumTLSStatus)
		case spColoCode:
			out.Node.Colo, _ = d.getStr(m)
		case spConnectTimestamp:
			e.ConnectTime = d.spectrumTime(m, out)
		case spDisconnectTimestamp:
			e.DisconnectTime = d.spectrumTime(m, out)
		case spEvent:
			if s, ok := d.getStr(m); ok {
				t, known := spectrumEvents[s]
				if !known {
					d.bad("Event", "%q is not a Spectrum event (connect, disconnect, clientFiltered, tlsError, resolveOrigin, originError)", s)
				}
				e.Type, typeSet = t, known
			}
		case spIpFirewall:
			e.Firewall, _ = d.getBool(m)
		case spOriginBytes:
			e.OriginBytes, _ = d.getInt(m)
		case spOriginIP:
			originIP = d.getIP(m)
		case spOriginPort:
			originPort = d.getPort(m)
		case spOriginProto:
			if s, ok := d.getStr(m); ok {
				if s != "" {
					d.enum(m, s, spectrumProtos)
				}
				e.OriginProto = s
			}
		case spOriginTcpRtt:
			n, _ := d.getInt(m)
			e.OriginRTT = time.Duration(n)
		case spOriginTlsCipher:
			e.OriginTLS.Cipher, _ = d.getStr(m)
		case spOriginTlsFingerprint:
			if s, ok := d.getStr(m); ok {
				if s != "" && !isHex(s, 64) {
					d.warn("OriginTlsFingerprint", "%q is not a hex SHA-256", s)
				}
				e.OriginTLS.Fingerprint = s
			}
		case spOriginTlsMode:
			e.TLSMode = d.getEnum(m, spectrumTLSModes)
		case spOriginTlsProtocol:
			e.OriginTLS.Protocol = d.getEnum(m, spectrumTLSProtocols)
		case spOriginTlsStatus:
			e.OriginTLS.Status = d.getEnum(m, spectrumTLSStatus)
		case spProxyProtocol:
			e.ProxyProtocol = d.getEnum(m, spectrumProxyProtocols)
		case spStatus:
			n, _ := d.getInt(m)
			e.Status = int(n)
		case spTimestamp:
			e.Time = d.spectrumTime(m, out)
		}
	}
	if clientIP.IsValid() {
		e.ClientAddr = netip.AddrPortFrom(clientIP, clientPort)
		e.PeerAddr = e.ClientAddr
	}
	if originIP.IsValid() {
		e.OriginAddr = netip.AddrPortFrom(originIP, originPort)
	}
	if !typeSet && out.fields&(1<<uint(d.index["Event"])) == 0 {
		// a job that did not select Event: tell it from the Status
		if c, ok := statusCause(e.Status); ok && c.typ != event.TypeNone {
			e.Type = c.typ
		} else {
			e.Type = event.Disconnect
		}
	}
	if e.Type != event.TypeNone && out.fields&(1<<uint(d.index["Status"])) != 0 && !spectrumPairOK(e.Type, e.Status) {
		d.warn("Status", "status %d does not go with event %s (spec §2)", e.Status, e.Type)
	}
	if e.Type.Terminal() && e.DisconnectTime.IsZero() {
		e.DisconnectTime = e.Time
	}
	if e.Type == event.Disconnect {
		if c, ok := statusCause(e.Status); ok {
			e.CloseSide, e.CloseReason = c.side, c.reason
		}
	}
	// Spectrum has no start time and no session id: the session starts at
	// its connect (or at the error record), and its id is derived from what
	// the connect and disconnect records of one session share.
	e.StartTime = e.ConnectTime
	if e.StartTime.IsZero() {
		e.StartTime = e.Time
	}
	if d.need == ^uint64(0) {
		e.SessionID = deriveID(e.StartTime, out.Node.Colo, e.App, e.ClientAddr)
	}
}

// sessionKey is what the records of one session share, for convert's and
// stats' tracker: the record's session id, or, for a record without one (an
// EdgeOne or CloudConnexa job that did not select it), one derived from
// what every record of the session carries, as for Spectrum: its start, colo,
// app and client. Without it all such records were one session, their
// bytes summed together. The event's own id stays unknown: the key only
// groups records (EdgeOne's ConnectTimeStamp is the same in each record of
// a session; a CloudConnexa disconnect, which has no app, gets a key of
// its own).
func (d *Decoded) sessionKey() event.ID {
	e := &d.Event
	if d.sessionKnown || !e.SessionID.IsZero() {
		return e.SessionID
	}
	return deriveID(e.StartTime, d.Node.Colo, e.App, e.ClientAddr)
}

// deriveID makes a session id from what every record of a Spectrum session
// carries: 4 bytes of start seconds (ids sort by start, like prism's own),
// then 8 bytes of FNV-1a over the start nanoseconds, colo, app and client.
func deriveID(start time.Time, colo, app string, client netip.AddrPort) event.ID {
	h := fnv.New64a()
	var b [64]byte
	buf := strconv.AppendInt(b[:0], start.UnixNano(), 10)
	buf = append(buf, 0)
	buf = append(buf, colo...)
	buf = append(buf, 0)
	buf = append(buf, app...)
	buf = append(buf, 0)
	buf = client.AppendTo(buf)
	_, _ = h.Write(buf)
	var id event.ID
	s := uint32(start.Unix())
	id[0], id[1], id[2], id[3] = byte(s>>24), byte(s>>16), byte(s>>8), byte(s)
	sum := h.Sum64()
	for i := range 8 {
		id[4+i] = byte(sum >> (56 - 8*i))
	}
	return id
}

// parseID reads a session id: the 24 hex digits prism writes, or any other
// vendor id, hashed into the same 12 bytes (the id then does not render
// back as it was).
func parseID(s string) (event.ID, bool) {
	var id event.ID
	if len(s) == 24 {
		if _, err := hex.Decode(id[:], []byte(s)); err == nil {
			return id, true
		}
	}
	h := fnv.New128a()
	_, _ = h.Write([]byte(s))
	copy(id[:], h.Sum(nil))
	return id, false
}

func isCountry(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
