#!/usr/bin/env bash
# Installs the real peers prism's integration tests talk to (HAProxy, nginx
# with the stream module, openssl, dnsmasq, dig, curl, socat, strace; iptables
# and iproute2 for the tests that run in a network namespace of their own;
# promtool from prometheus, headless chromium for the dashboard; systemd for
# systemd-analyze and systemd-socket-activate, which check deploy/prism.service
# and socket activation), then runs every check: gofmt, go vet, the whole
# test suite under -race, and a short run of every fuzz target.
# Works on a fresh Debian machine with only Go installed; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(haproxy nginx-light libnginx-mod-stream openssl dnsmasq-base bind9-dnsutils curl socat strace iptables iproute2 prometheus chromium systemd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing test peers: ${missing[*]}"
	$sudo apt-get update -qq
	# A temporary policy-rc.d keeps the packages' services (nginx on :80)
	# from starting; an existing one is left alone. The trap removes ours
	# even when apt-get fails (set -e exits): left behind, it would keep
	# every service on this machine from starting.
	made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		$sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
		made_policy=1
		trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [ -n "$made_policy" ]; then
		$sudo rm -f /usr/sbin/policy-rc.d
		trap - EXIT # the fuzz runs below set their own
	fi
fi

export GOTOOLCHAIN=local
# Under -race every process that exits 0 (each test binary, and each
# child a test starts) first sleeps GORACE's atexit_sleep_ms, 1 s by
# default, so that goroutines still running may report a race: a second
# per package per go test run below. A race found still fails the run
# (exit 66); a GORACE of the caller's comes after, so it wins.
export GORACE="atexit_sleep_ms=0${GORACE:+ $GORACE}"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...
go vet -tags proxybench ./internal/logjob/ # the proxy connection-rate benchmark behind its tag
# The README's import graph must be the one go list sees.
bash scripts/importgraph.sh --check

# The build on the other platforms Go targets for development: the Linux
# fast paths sit behind build tags with portable fallbacks (README,
# "Platforms"); these catch a Linux-only call outside them.
GOOS=darwin go build ./...
GOOS=darwin go vet ./...
GOOS=linux GOARCH=arm64 go build ./...
# The same fallbacks, run here: the build tag portable selects them on Linux.
go test -race -count=1 -tags portable ./internal/relay ./internal/udpproxy
# The relay's Linux fallback when it has no event loop or poller (no
# epoll, or no descriptor to spare): sockets read through net.Conn, and
# the proxy's plain apps accept and dial through net, not the raw path.
PRISM_RELAY_POLLER=off go test -race -count=1 ./internal/relay ./internal/proxy
# With one P the raw path's accept loops handle connections themselves
# (proxy: inline): the proxy's tests that way too.
GOMAXPROCS=1 go test -race -count=1 ./internal/proxy
# A one-CPU machine or container (one P in the test and in every prism it
# starts): a reload and an upgrade under load lose no flow and no spooled
# record. (Not at the same time as the run above, though each has one P:
# these two are the suite's most load-sensitive tests.)
GOMAXPROCS=1 go test -race -count=1 -run 'TestReloadWithoutDroppingAFlow|TestUpgradeWithoutAcceptGap' ./cmd/prism

go test -race -count=1 -timeout 20m ./...

# Every parser of untrusted or operator input, fuzzed for a few seconds
# each (FUZZTIME, default 4s): a new crasher fails the run, and go test
# writes it under the package's testdata/fuzz to be kept as a regression.
fuzz=(
	"./internal/pphdr FuzzReadTCP"            # PROXY v1/v2 from a trusted front (TCP)
	"./internal/pphdr FuzzParseUDP"           # PROXY v2/v1 on datagrams
	"./internal/spp FuzzParse"                # Simple Proxy Protocol
	"./internal/spp FuzzRoundTrip"
	"./internal/tlsedge FuzzReadClientHello"  # ClientHello peek
	"./internal/firewall FuzzParseList"       # firewall list files
	"./internal/config FuzzParse"             # the config file
	"./internal/logjob FuzzCompileFilter"     # log job filters
	"./internal/render FuzzAppendJSONString"  # record encoding
	"./internal/logs FuzzScanner"             # prism logs: the JSON record scanner
	"./internal/logs FuzzConvert"             # prism logs: every reader, vendor exports as they come
	"./internal/logs FuzzInput"               # prism logs stats/verify/convert on any file
	"./internal/spool FuzzDecode"             # spool files left on disk
)
# Go 1.26's fuzz coordinator can end a run that found nothing with a bare
# "context deadline exceeded" (a race at the -fuzztime deadline,
# go.dev/issue/75804, fixed in Go 1.27): such a run is tried again, up to
# twice (it showed about once in a dozen targets here).
# A failing input (go test says where it wrote it) always fails the script.
fuzzlog=$(mktemp)
trap 'rm -f "$fuzzlog"' EXIT
for f in "${fuzz[@]}"; do
	read -r pkg target <<<"$f"
	for try in 1 2 3; do
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-4s}" -parallel 2 "$pkg" 2>&1 | tee "$fuzzlog"; then
			break
		fi
		if [ "$try" = 3 ] || grep -q 'Failing input written' "$fuzzlog" || ! grep -q '^    context deadline exceeded$' "$fuzzlog"; then
			exit 1
		fi
		echo "fuzz $target: the coordinator's deadline race (no failing input); running it again"
	done
done
