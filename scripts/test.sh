#!/usr/bin/env bash
# Installs the real peers prism's integration tests talk to (HAProxy, nginx
# with the stream module, openssl, dnsmasq, dig, curl, socat, strace; iptables
# and iproute2 for the tests that run in a network namespace of their own),
# then runs every check: gofmt, go vet and the whole test suite under -race.
# Works on a fresh Debian machine with only Go installed; uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(haproxy nginx-light libnginx-mod-stream openssl dnsmasq-base bind9-dnsutils curl socat strace iptables iproute2)
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
	# from starting; an existing one is left alone.
	made_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		$sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
		made_policy=1
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -z "$made_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

export GOTOOLCHAIN=local
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 20m ./...
