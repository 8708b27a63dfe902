package testpeer

import "os"

// ReRunEnv is the environment for a re-run of the test binary (a child
// process that runs one test of it, as InNetNS and StraceSplices do): the
// test's own environment and extra, with atexit_sleep_ms=0 put first in
// GORACE. Under -race a process that exits 0 sleeps atexit_sleep_ms (1 s
// unless GORACE says otherwise) before it exits, so that goroutines still
// running may report a race: a parent waiting for its child waited that
// second too. A race the child finds still makes it exit 66, which fails
// the parent test; a GORACE of the environment comes after, so it can
// set its own. Without the race detector GORACE is not read.
func ReRunEnv(extra ...string) []string {
	env := append(os.Environ(), extra...)
	gorace := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		gorace += " " + v
	}
	return append(env, "GORACE="+gorace)
}
