package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	withVCS := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-12-01T09:00:00Z"},
		{Key: "vcs.modified", Value: "false"},
	}}
	dirty := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.modified", Value: "true"},
	}}
	noVCS := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		ld   string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"", withVCS, true, "v1.4.0 (commit 0123456789ab, 2026-12-01T09:00:00Z)"},
		{"v9.9.9", withVCS, true, "v9.9.9 (commit 0123456789ab, 2026-12-01T09:00:00Z)"},
		{"", dirty, true, "dev (commit 0123456789ab-dirty)"},
		{"", noVCS, true, "dev (commit unknown)"},
		{"", nil, false, "dev (commit unknown)"},
	} {
		if got := formatVersion(tc.ld, tc.bi, tc.ok); got != tc.want {
			t.Errorf("formatVersion(%q, %+v) = %q, want %q", tc.ld, tc.bi, got, tc.want)
		}
	}
}
