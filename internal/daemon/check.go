package daemon

import (
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
// run before a renewal has put them in place). Each problem carries its
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
			fw, err := firewall.New(fc, db, quiet)
			if err != nil {
				errs = append(errs, cfg.Issue(key+".ip_firewall", "%v", err))
			} else {
				_ = fw.Close()
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
