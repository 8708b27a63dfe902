package daemon

import (
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/prismproxy/prism/internal/logjob"
	"github.com/prismproxy/prism/internal/udpproxy"
)

// carried keeps the counters of what a reload replaced or removed, so
// that the totals the admin side reports never go down: Prometheus reads
// a counter that drops as a reset, and a changed app (or any log_jobs
// change, which rebuilds every job) took its share away. Like the admin
// tally, which counts per app id across reloads, counts are kept per app
// id and per log-job name: a retired app part's final counts once it has
// drained, and while it drains its live counts (the sessions still on a
// replaced UDP server go on receiving datagrams). Likewise a replaced log
// pipeline's jobs are read live while they flush (a reload does that after
// the swap, outside the daemon's lock), and their final counts kept once
// it is closed: a job is in one place or the other, never both. Only the
// admin side and reloads take mu; the data path never does.
type carried struct {
	mu       sync.Mutex
	draining map[*appPart]struct{}
	apps     map[string]*partCounts        // by app id: parts that have drained
	flushing map[*logjob.Pipeline]struct{} // replaced pipelines still writing what they hold
	jobs     map[string]logjob.Stats       // by job name: replaced pipelines, counters only
}

// partCounts are one app part's counters.
type partCounts struct {
	udp     udpproxy.Stats // counters and Sessions; Blocked is left out
	refused map[string]uint64
	evicted uint64 // rate buckets the limiter evicted
	health  int64
	accept  uint64
}

// counts reads p's counters now.
func (p *appPart) counts() partCounts {
	var c partCounts
	if p.udp != nil {
		c.udp = p.udp.Stats()
		c.udp.Blocked = 0 // a gauge of the server's own table
		c.health = c.udp.HealthChecks
		c.refused = p.udp.LimitRefusals()
		c.evicted = p.udp.RateBucketsEvicted()
		return c
	}
	c.health = p.tcp.Stats().HealthChecks
	c.accept = p.tcp.AcceptErrors()
	c.refused = p.tcp.LimitRefusals()
	c.evicted = p.tcp.RateBucketsEvicted()
	return c
}

// add adds o's counts to c.
func (c *partCounts) add(o partCounts) {
	addInts(&c.udp, &o.udp)
	for k, n := range o.refused {
		if c.refused == nil {
			c.refused = map[string]uint64{}
		}
		c.refused[k] += n
	}
	c.evicted += o.evicted
	c.health += o.health
	c.accept += o.accept
}

// addInts adds every integer field of *src to *dst (same struct type), so
// that a counter added to udpproxy.Stats, logjob.Stats or deliver.Stats
// is carried without a change here. Other fields (names, pointers, times)
// are left as dst has them.
func addInts[T any](dst, src *T) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for i := range d.NumField() {
		switch f := d.Field(i); f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + s.Field(i).Int())
		case reflect.Uint64:
			f.SetUint(f.Uint() + s.Field(i).Uint())
		}
	}
}

// retiring adds p, which stopped serving new clients, to the parts read
// live.
func (c *carried) retiring(p *appPart) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining == nil {
		c.draining = map[*appPart]struct{}{}
	}
	c.draining[p] = struct{}{}
}

// retired moves p, drained (it counts nothing more), from the parts read
// live to the final counts of its app id.
func (c *carried) retired(p *appPart) {
	final := p.counts()
	final.udp.Sessions = 0
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.draining, p)
	if c.apps == nil {
		c.apps = map[string]*partCounts{}
	}
	if c.apps[p.id] == nil {
		c.apps[p.id] = &partCounts{}
	}
	c.apps[p.id].add(final)
}

// drainingOf are the retired parts of app id still draining.
func (c *carried) drainingOf(id string) []*appPart {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*appPart
	for p := range c.draining {
		if p.id == id {
			out = append(out, p)
		}
	}
	return out
}

// app is what the replaced and removed parts of app id counted (all of
// them when id is "").
func (c *carried) app(id string) partCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out partCounts
	for aid, pc := range c.apps {
		if id == "" || aid == id {
			out.add(*pc)
		}
	}
	for p := range c.draining {
		if id == "" || p.id == id {
			out.add(p.counts())
		}
	}
	return out
}

// pipelineFlushing adds p, a pipeline a reload replaced (its successor
// started: p's Stats are the jobs it retired), to those read live until
// pipelineFlushed.
func (c *carried) pipelineFlushing(p *logjob.Pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flushing == nil {
		c.flushing = map[*logjob.Pipeline]struct{}{}
	}
	c.flushing[p] = struct{}{}
}

// pipelineFlushed moves p, closed (its jobs count nothing more), from the
// pipelines read live to the final counts of its jobs, in one step under
// mu so that no jobStats sees them twice or not at all.
func (c *carried) pipelineFlushed(p *logjob.Pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flushing, p)
	if c.jobs == nil {
		c.jobs = map[string]logjob.Stats{}
	}
	addJobCounts(c.jobs, p.Stats())
}

// addJobCounts adds the counters of sts to acc, by job name; gauges are
// left out (they are the running job's).
func addJobCounts(acc map[string]logjob.Stats, sts []logjob.Stats) {
	for _, st := range sts {
		a := acc[st.Job]
		st.Queued = 0 // a gauge: what the running job holds now
		addInts(&a, &st)
		if st.Delivery != nil {
			d := *st.Delivery
			d.Pending, d.SpoolBytes, d.OldestUndelivered = 0, 0, time.Time{} // gauges too
			if a.Delivery != nil {
				addInts(&d, a.Delivery)
			}
			a.Delivery = &d // a new value: a's old one may be shared (jobStats' copy)
		}
		acc[st.Job] = a
	}
}

// jobStats is cur, the running pipeline's counters, with what the
// replaced pipelines' jobs of the same names counted added (delivery
// counters only to a job that has a remote destination now), those of
// the replaced pipelines still flushing read now.
func (c *carried) jobStats(cur []logjob.Stats) []logjob.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	jobs := c.jobs
	if len(c.flushing) > 0 {
		jobs = make(map[string]logjob.Stats, len(c.jobs))
		maps.Copy(jobs, c.jobs)
		for p := range c.flushing {
			addJobCounts(jobs, p.Stats())
		}
	}
	for i := range cur {
		old, ok := jobs[cur[i].Job]
		if !ok {
			continue
		}
		addInts(&cur[i], &old)
		if cur[i].Delivery != nil && old.Delivery != nil {
			d := *cur[i].Delivery
			addInts(&d, old.Delivery)
			cur[i].Delivery = &d
		}
	}
	return cur
}
