#!/usr/bin/env bash
# Prints prism's import graph from `go list`: every package of the module
# (tests, test-helper packages and bench/ left out) with the module packages it imports, one line
# each, in the form the README's "Layout" section shows between its
# importgraph markers.
#
#   scripts/importgraph.sh           print the graph
#   scripts/importgraph.sh --check   fail if the README's copy is stale
#
# The rule the graph shows (no data-path package depends on config, the log
# jobs or the renderers, even indirectly) is a test of its own:
# internal/daemon/appbuild/imports_test.go.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
mod=$(go list -m)

graph() {
	go list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' ./cmd/... ./internal/... |
		awk '$1 !~ /test(peer)?$/' |
		while read -r pkg imports; do
			deps=()
			for i in $imports; do
				case $i in "$mod"/*) deps+=("${i#"$mod"/}") ;; esac
			done
			printf '%s → %s\n' "${pkg#"$mod"/}" "${deps[*]:-(none)}"
		done
}

if [ "${1:-}" != "--check" ]; then
	graph
	exit
fi

want=$(graph)
have=$(sed -n '/<!-- importgraph:begin -->/,/<!-- importgraph:end -->/p' README.md | sed '1,2d;$d' | sed '$d')
if [ "$want" != "$have" ]; then
	echo "importgraph: README.md's import graph is stale; regenerate it with scripts/importgraph.sh:"
	diff <(echo "$have") <(echo "$want") || true
	exit 1
fi
