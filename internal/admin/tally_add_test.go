package admin

import (
	"fmt"
	"testing"
	"time"

	"github.com/prismproxy/prism/internal/event"
)

// TestTallyAddKeepsCounts: apps added later (a reload) are counted from
// then on; the counts of the apps already there go on, and adding one
// twice changes nothing. Past scanApps the table switches to a map.
func TestTallyAddKeepsCounts(t *testing.T) {
	tl := NewTally([]string{"a"})
	open := func(app string) {
		e := event.New(app, event.NewID(time.Now()))
		e.Type = event.Connect
		tl.Emit(&e)
	}
	open("a")
	open("b") // not counted yet
	tl.Add("b")
	open("a")
	open("b")
	tl.Add("b", "a")
	var many []string
	for i := range scanApps + 1 {
		many = append(many, fmt.Sprint("m", i))
	}
	tl.Add(many...)
	open("a")
	open("m3")
	for app, want := range map[string]uint64{"a": 3, "b": 1, "m3": 1, "m0": 0} {
		c, ok := tl.App(app)
		if !ok || c.Opened != want {
			t.Errorf("app %s: counted %v, opened %d, want %d", app, ok, c.Opened, want)
		}
	}
	if _, ok := tl.App("c"); ok {
		t.Error("app c was never added")
	}
}
