package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prismproxy/prism/internal/cfgerr"
	"github.com/prismproxy/prism/internal/config"
	"github.com/prismproxy/prism/internal/firewall"
	"github.com/prismproxy/prism/internal/geo"
	"github.com/prismproxy/prism/internal/sink"
	"github.com/prismproxy/prism/internal/tlsedge"
)

// Check opens, then releases, what New would open besides listeners: the
// GeoIP databases, every firewall list file, every log file path and spool
// directory (checked, not created), the TLS certificates and CA files of
// the apps, the admin listener and remote log destinations. errs would stop New (prism run would
// print "cannot start"); warns are TLS files that do not
// load, which a running prism reports and keeps retrying (so validate may
// run before a renewal has put them in place), and what a firewall warns
// of at load (country or ASN rules without their database). Each problem carries its
// key and line. Nothing is left open or running when Check returns.
func Check(cfg *config.Config) (errs, warns []*config.Issue) {
	quiet := slog.New(slog.DiscardHandler)
	gcfg := cfg.GeoIP
	gcfg.ReloadInterval = -1
	db, gerr := geo.Open(gcfg, quiet)
	if gerr != nil {
		key := "geoip"
		if cfg.GeoIP.CountryDB == "" || cfg.GeoIP.ASNDB == "" {
			key = "geoip.country_db"
			if cfg.GeoIP.CountryDB == "" {
				key = "geoip.asn_db"
			}
		}
		errs = append(errs, cfg.Issue(key, "%v", gerr))
	}
	defer func() { _ = db.Close() }()
	if err := cfg.Admin.CheckTLS(); err != nil {
		errs = append(errs, cfg.Issue("admin.tls", "%v", err))
	}
	for i := range cfg.LogJobs {
		d := &cfg.LogJobs[i].Destination.File
		if err := d.CheckWritable(); err != nil {
			errs = append(errs, cfg.Issue(cfgerr.Index("log_jobs", i)+".destination.path", "%v", err))
		}
		dst := &cfg.LogJobs[i].Destination
		for _, tc := range []*sink.TLSConfig{&dst.HTTP.TLS, &dst.Kafka.TLS} {
			if tc.Set() {
				if _, err := tc.Build(); err != nil {
					errs = append(errs, cfg.Issue(cfgerr.Index("log_jobs", i)+".destination.tls", "%v", err))
				}
			}
		}
		if err := cfg.LogJobs[i].Spool.CheckWritable(); err != nil {
			errs = append(errs, cfg.Issue(cfgerr.Index("log_jobs", i)+".spool.dir", "%v", err))
		}
	}
	for i := range cfg.Apps {
		a := &cfg.Apps[i]
		key := cfgerr.Index("apps", i)
		if gerr == nil { // without the databases a country rule would fail for that reason alone
			fc := a.IPFirewall
			fc.ReloadInterval = -1
			var said warnings
			fw, err := firewall.New(fc, db, slog.New(&said))
			if err != nil {
				errs = append(errs, cfg.Issue(key+".ip_firewall", "%v", err))
			} else {
				_ = fw.Close()
			}
			for _, w := range said {
				warns = append(warns, cfg.Issue(key+".ip_firewall", "warning: %s", w))
			}
		}
		if a.Protocol != "tcp" || len(a.TLS.Certificates) == 0 && !a.TLS.OriginTLS() {
			continue
		}
		tc := a.TLS
		tc.ReloadInterval = -1
		edge, err := tlsedge.NewEdge(tc, quiet)
		if err != nil {
			errs = append(errs, cfg.Issue(key+".tls", "%v", err))
			continue
		}
		if err := edge.Ready(); err != nil {
			warns = append(warns, cfg.Issue(key+".tls", "warning: %v", err))
		}
		_ = edge.Close()
	}
	return errs, warns
}

// warnings is a slog.Handler that keeps the text of each warning (and
// worse) logged to it, so that Check reports what a running prism would
// log at load, such as country rules without a country database.
type warnings []string

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	*w = append(*w, msg)
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
