package main

import (
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// versionString is the module version (or the -X version), then the
// commit and build date when the build recorded them:
// "v1.2.0 (commit 0123abcd4567, 2026-12-01T09:00:00Z)", "dev (commit
// 0123abcd4567-dirty)", or "dev (commit unknown)" for a build without VCS
// information (-buildvcs=false, a build outside a checkout).
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	return formatVersion(version, bi, ok)
}

// plainVersion is the version alone ("v1.2.0", "dev"), for records that
// name the product's version.
func plainVersion() string {
	v, _, _ := strings.Cut(versionString(), " (")
	return v
}

func formatVersion(ldVersion string, bi *debug.BuildInfo, ok bool) string {
	v := ldVersion
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	var rev, when string
	dirty := false
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		return v + " (commit unknown)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	parts := []string{"commit " + rev}
	if when != "" {
		parts = append(parts, when)
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}
