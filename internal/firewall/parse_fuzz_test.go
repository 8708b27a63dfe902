package firewall

import (
	"strings"
	"testing"
)

// FuzzParseList: any list text either fails with a line-numbered error or
// yields keys that each parse back to themselves from their own text.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1\n10.0.0.0/8 # x\nAS13335\n13335\nse\n",
		"::ffff:10.0.0.0/104\n2001:db8::/32\n#only a comment\n\n",
		"300.1.1.1\n", "AS\n", "A\n", "AS0\n", "1.2.3.4/33\n", "fe80::1%eth0\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		keys, err := parseList("fuzz", text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for _, k := range keys {
			var s string
			switch k.kind {
			case kindPrefix:
				if !k.prefix.IsValid() || k.prefix != k.prefix.Masked() || k.prefix.Addr().Is4In6() {
					t.Fatalf("prefix key %v not canonical", k.prefix)
				}
				s = k.prefix.String()
			case kindASN:
				s = k.String()
			case kindCountry:
				s = k.country
			}
			k2, err := parseEntry(s)
			if err != nil || k2 != k {
				t.Fatalf("key %v (%q) parses back as %v, %v", k, s, k2, err)
			}
		}
	})
}
