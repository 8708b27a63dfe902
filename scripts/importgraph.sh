#!/usr/bin/env bash
# Prints prism's import graph from `go list`: every package of the module
# (tests, test-helper packages and bench/ left out) with the module packages it imports, one line
# each, in the form the README's "Layout" section shows between its
# importgraph markers.
#
#   scripts/importgraph.sh           print the graph
#   scripts/importgraph.sh --check   fail if the README's copy is stale, or
#                                    if a data-path package depends, even
#                                    indirectly, on the config tree or a
#                                    vendor field table
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

fail=0
# The data path: the TCP and UDP servers and everything they import. None of
# it may compile against the config tree, the log side or a vendor field
# table; it gets plain values from internal/daemon.
forbidden='/internal/(config|logjob|render|logs|deliver|sink|spool|admin|daemon)(/|$)'
for root in ./internal/proxy ./internal/udpproxy; do
	bad=$(go list -deps -f '{{.ImportPath}}' "$root" | grep -E "^$mod$forbidden" || true)
	if [ -n "$bad" ]; then
		echo "importgraph: $root depends on what the data path must not know:"
		for b in $bad; do
			echo "  ${b#"$mod"/} (via: $(go list -deps -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}' "$root" | awk -v b="$b" '{for(i=2;i<=NF;i++) if($i==b) print $1}' | sed "s#$mod/##" | tr '\n' ' '))"
		done
		fail=1
	fi
done

want=$(graph)
have=$(sed -n '/<!-- importgraph:begin -->/,/<!-- importgraph:end -->/p' README.md | sed '1,2d;$d' | sed '$d')
if [ "$want" != "$have" ]; then
	echo "importgraph: README.md's import graph is stale; regenerate it with scripts/importgraph.sh:"
	diff <(echo "$have") <(echo "$want") || true
	fail=1
fi
exit $fail
