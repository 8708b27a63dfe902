package logjob

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
	"github.com/prismproxy/prism/internal/render"
)

// TestOCSFJob: an ocsf job is configured like any dataset's (periodic
// records, filters on its scalar attributes) and gets the byte deltas of
// each record in traffic, the totals in cumulative_traffic.
func TestOCSFJob(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "o", Dataset: render.OCSF, Interval: time.Minute,
			Filter: `{"where":{"key":"activity_id","operator":"in","value":[2,3,4,5]}}`}, ""},
		{Config{Name: "o", Dataset: render.OCSF, Filter: `{"where":{"key":"src_endpoint","operator":"eq","value":"x"}}`},
			"filter: where.key: field \"src_endpoint\" cannot be filtered on"},
		{Config{Name: "o", Dataset: render.OCSF, TimestampFormat: "rfc3339"}, "timestamp_format: dataset ocsf has fixed"},
	} {
		errs := tc.cfg.Validate()
		switch {
		case tc.want == "" && len(errs) != 0:
			t.Errorf("%+v: %v", tc.cfg, errs)
		case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.cfg, errs, tc.want)
		}
	}

	d := &memDest{}
	useDests(t, map[string]*memDest{"o": d})
	p, err := newPrepared(t, node, []Config{{Name: "o", Dataset: render.OCSF}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := session(1, event.Connect)
	p.Emit(&e)
	e.Type, e.ClientBytes, e.OriginBytes = event.Interim, 100, 1000
	p.Emit(&e)
	e.Type, e.Status, e.ClientBytes, e.OriginBytes = event.Disconnect, event.StatusOK, 250, 3000
	e.DisconnectTime = e.Time
	p.Emit(&e)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := d.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	wantOut, wantTotal := []float64{0, 100, 150}, []float64{0, 100, 250}
	for i, r := range recs {
		tr := r["traffic"].(map[string]any)
		ct := r["cumulative_traffic"].(map[string]any)
		if tr["bytes_out"] != wantOut[i] || ct["bytes_out"] != wantTotal[i] {
			t.Errorf("record %d: traffic %v cumulative %v, want bytes_out %v / %v", i, tr, ct, wantOut[i], wantTotal[i])
		}
	}
	if recs[0]["activity_id"] != 1.0 || recs[1]["activity_id"] != 6.0 || recs[2]["activity_id"] != 2.0 {
		t.Errorf("activities %v %v %v, want 1 6 2", recs[0]["activity_id"], recs[1]["activity_id"], recs[2]["activity_id"])
	}
}
