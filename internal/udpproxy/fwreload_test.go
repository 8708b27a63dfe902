package udpproxy

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/testpeer"
)

// A client blocked by a list file is let through as soon as the list is
// reloaded without it: its negative entry must not outlive the rule.
func TestFirewallReloadExpiresNegativeEntries(t *testing.T) {
	list := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(list, []byte("127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := firewall.Config{Lists: []firewall.List{{Action: "block", Path: list}}, ReloadInterval: -1}
	if err := cfgerr.Prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	fw, err := firewall.New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	origin := testpeer.StartUDPEcho(t, "")
	col := newCollector()
	s := startServer(t, App{Pool: staticPool(t, origin.Addr().String()), Firewall: fw, UDP: Config{IdleTimeout: time.Minute}}, col, nil)
	c := dial(t, addrOf(s, 0))
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if e := col.NextOf(t, event.ClientFiltered); e.FirewallMatch != event.FirewallBlockIP {
		t.Fatalf("match %s", e.FirewallMatch)
	}
	if err := os.WriteFile(list, []byte("# nobody blocked now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fw.Reload(true); err != nil {
		t.Fatal(err)
	}
	// The sweeper expires the negative entry when the firewall signals the
	// change; no datagram is needed for that.
	eventually(t, "negative entry expired after the list reload", func() bool {
		return s.Stats().Blocked == 0
	})
	if got := roundTrip(t, c, "three"); got != "three" {
		t.Fatalf("echo %q", got)
	}
	col.NextOf(t, event.Connect)
}
