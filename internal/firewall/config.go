package firewall

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/netspec"
)

// Actions of a rule or list.
const (
	ActionAllow = "allow"
	ActionBlock = "block"
)

// DefaultReloadInterval is how often list files are checked for changes
// when Config.ReloadInterval is zero.
const DefaultReloadInterval = 5 * time.Second

// Config is an app's `ip_firewall:` section. The zero value is a firewall
// that is off.
type Config struct {
	// Enabled turns the firewall on. Unset: on when the section has rules
	// or lists, or its default is block.
	Enabled *bool `yaml:"enabled"`
	// FailClosed refuses a connection (BLOCK_ERROR) when an ASN or country
	// rule would have to be consulted but the address cannot be looked up
	// (no database configured, or the lookup failed). When false, such
	// rules are skipped for that connection.
	FailClosed bool `yaml:"fail_closed"`
	// Default is what happens when no rule matches: allow (the default) or
	// block. Either way the record says UNKNOWN (no rule matched); a
	// default-block refusal is a clientFiltered 403 with UNKNOWN.
	Default string `yaml:"default"`
	// Rules are inline rules, one match key each.
	Rules []Rule `yaml:"rules"`
	// Lists are files of entries sharing one action.
	Lists []List `yaml:"lists"`
	// ReloadInterval is how often list files are checked for changes. 0
	// means DefaultReloadInterval; negative turns polling off.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Rule is one inline rule: an action and exactly one of ip, cidr, country
// or asn.
type Rule struct {
	Action  string `yaml:"action"`  // allow | block
	IP      string `yaml:"ip"`      // one address, v4 or v6
	CIDR    string `yaml:"cidr"`    // a prefix; host bits are ignored
	Country string `yaml:"country"` // ISO-3166 alpha-2, any case
	ASN     string `yaml:"asn"`     // 13335 or "AS13335"
}

// List is a file of entries, one a line: an IP, a CIDR, a two-letter
// country code or an AS number ("AS123" or "123"); '#' starts a comment.
type List struct {
	Action string `yaml:"action"` // allow | block
	Path   string `yaml:"path"`
}

// SetDefaults fills Default, Enabled and ReloadInterval.
func (c *Config) SetDefaults() {
	if c.Default == "" {
		c.Default = ActionAllow
	}
	if c.Enabled == nil {
		on := len(c.Rules) > 0 || len(c.Lists) > 0 || c.Default == ActionBlock
		c.Enabled = &on
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
}

// IsEnabled reports whether the firewall is on, applying the default for an
// unset Enabled.
func (c Config) IsEnabled() bool {
	if c.Enabled != nil {
		return *c.Enabled
	}
	return len(c.Rules) > 0 || len(c.Lists) > 0 || c.Default == ActionBlock
}

// Validate checks every rule, reads and parses every list file (so a bad
// line is reported before the proxy starts) and refuses an inline rule
// that both allows and blocks the same key.
func (c Config) Validate() []*cfgerr.Error { return c.validate(true) }

// ValidateUnread is Validate without reading the list files, for the
// commands that only signal a running prism (which reads them as its own
// user; they may not be allowed to).
func (c Config) ValidateUnread() []*cfgerr.Error { return c.validate(false) }

func (c Config) validate(readLists bool) []*cfgerr.Error {
	var errs cfgerr.List
	switch c.Default {
	case "", ActionAllow, ActionBlock:
	default:
		errs.Add("default", "must be allow or block, got %q", c.Default)
	}
	if c.ReloadInterval > 0 && c.ReloadInterval < 100*time.Millisecond {
		errs.Add("reload_interval", "must be at least 100ms (or negative to turn polling off), got %v", c.ReloadInterval)
	}
	seen := make(map[key]string)
	for i, r := range c.Rules {
		k := cfgerr.Index("rules", i)
		if !validAction(r.Action) {
			errs.Add(cfgerr.Join(k, "action"), "must be allow or block, got %q", r.Action)
		}
		e, field, err := r.parse()
		if err != nil {
			errs.Add(cfgerr.Join(k, field), "%v", err)
			continue
		}
		if prev, ok := seen[e]; ok && prev != r.Action && validAction(r.Action) {
			errs.Add(k, "%s is both allowed and blocked by inline rules", e)
		}
		seen[e] = r.Action
	}
	for i, l := range c.Lists {
		k := cfgerr.Index("lists", i)
		if !validAction(l.Action) {
			errs.Add(cfgerr.Join(k, "action"), "must be allow or block, got %q", l.Action)
		}
		if l.Path == "" {
			errs.Add(cfgerr.Join(k, "path"), "is required")
			continue
		}
		if !readLists {
			continue
		}
		if _, err := readList(l.Path); err != nil {
			errs.Add(cfgerr.Join(k, "path"), "%v", err)
		}
	}
	return errs
}

func validAction(a string) bool { return a == ActionAllow || a == ActionBlock }

// kindOf says which precedence level a key belongs to.
type kind uint8

const (
	kindPrefix kind = iota
	kindASN
	kindCountry
)

// key is one parsed match key: a prefix, an AS number or a country.
type key struct {
	kind    kind
	prefix  netip.Prefix
	asn     uint32
	country string
}

func (k key) String() string {
	switch k.kind {
	case kindASN:
		return "AS" + strconv.FormatUint(uint64(k.asn), 10)
	case kindCountry:
		return "country " + k.country
	}
	return k.prefix.String()
}

// parse returns the rule's key and, on error, the field it is about.
func (r Rule) parse() (key, string, error) {
	n := 0
	for _, v := range []string{r.IP, r.CIDR, r.Country, r.ASN} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return key{}, "", fmt.Errorf("a rule needs exactly one of ip, cidr, country, asn (has %d)", n)
	}
	switch {
	case r.IP != "":
		a, err := netip.ParseAddr(strings.TrimSpace(r.IP))
		if err != nil {
			return key{}, "ip", fmt.Errorf("not an IP address: %q", r.IP)
		}
		return prefixKey(netip.PrefixFrom(a, a.BitLen())), "", nil
	case r.CIDR != "":
		p, err := netip.ParsePrefix(strings.TrimSpace(r.CIDR))
		if err != nil {
			return key{}, "cidr", fmt.Errorf("not a CIDR prefix: %q", r.CIDR)
		}
		return prefixKey(p), "", nil
	case r.Country != "":
		cc, ok := parseCountry(strings.TrimSpace(r.Country))
		if !ok {
			return key{}, "country", fmt.Errorf("not a two-letter ISO-3166 country code: %q", r.Country)
		}
		return key{kind: kindCountry, country: cc}, "", nil
	default:
		asn, ok := parseASN(strings.TrimSpace(r.ASN))
		if !ok {
			return key{}, "asn", fmt.Errorf("not an AS number (123 or AS123): %q", r.ASN)
		}
		return key{kind: kindASN, asn: asn}, "", nil
	}
}

// prefixKey makes a prefix key; an IPv4-mapped IPv6 prefix (/96 or longer)
// becomes the IPv4 prefix it covers, because clients are matched by their
// unmapped address. A shorter IPv6 prefix (::/0) stays IPv6 and so matches
// no IPv4 client, though it contains ::ffff:0:0/96: docs/firewall.md says
// so (0.0.0.0/0 is the IPv4 one), and TestPrefixFamilies pins it.
func prefixKey(p netip.Prefix) key {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return key{kind: kindPrefix, prefix: p.Masked()}
}

func parseCountry(s string) (string, bool) {
	// Only ASCII letters: strings.ToUpper would map a two-byte rune such
	// as "ı" or "ſ" to a one-byte letter and leave a one-byte string.
	if len(s) != 2 || !isASCIILetter(s[0]) || !isASCIILetter(s[1]) {
		return "", false
	}
	return string([]byte{s[0] &^ 0x20, s[1] &^ 0x20}), true
}

func isASCIILetter(b byte) bool { return (b|0x20) >= 'a' && (b|0x20) <= 'z' }

func parseASN(s string) (uint32, bool) {
	if len(s) > 2 && (s[:2] == "AS" || s[:2] == "as" || s[:2] == "As") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// parseEntry parses one list line (already stripped of comments and space).
func parseEntry(s string) (key, error) {
	switch {
	case strings.ContainsAny(s, "/.:"):
		p, err := netspec.ParsePrefix(s)
		switch {
		case err == nil:
			return prefixKey(p), nil
		case strings.Contains(s, "/"):
			return key{}, fmt.Errorf("not a CIDR prefix: %q", s)
		default:
			return key{}, fmt.Errorf("not an IP address: %q", s)
		}
	}
	if asn, ok := parseASN(s); ok {
		return key{kind: kindASN, asn: asn}, nil
	}
	if cc, ok := parseCountry(s); ok {
		return key{kind: kindCountry, country: cc}, nil
	}
	return key{}, fmt.Errorf("not an IP, CIDR, country code or AS number: %q", s)
}

// readList reads and parses a whole list file. Any bad line fails the whole
// file: a half-read list would silently let through what it was meant to
// block.
func readList(path string) ([]key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseList(path, string(b))
}

func parseList(path, text string) ([]key, error) {
	var keys []key
	for n := 1; text != ""; n++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
