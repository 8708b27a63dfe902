#!/bin/sh
# Runs prism's benchmarks on loopback, each against its peers and a direct
# connection: TCP (./bench: direct, prism, the bare relay, HAProxy, nginx
# stream), UDP (./bench/udpbench: direct, prism, nginx stream udp) and TLS
# termination (./bench/tlsbench: prism, nginx stream ssl) and log delivery
# (./bench/deliverbench: records per CPU-second to http, s3 and kafka).
# About 3 minutes.
#
# With arguments only the TCP harness runs, with those arguments, e.g.
#   bench/run.sh -sections idle,conn -idle 3000
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench" ./bench
if [ $# -gt 0 ]; then
	"$bin/bench" "$@"
	exit
fi
"$bin/bench"
echo
go build -o "$bin/udpbench" ./bench/udpbench
"$bin/udpbench" -rates 5000,10000,25000,50000,100000
echo
go build -o "$bin/tlsbench" ./bench/tlsbench
"$bin/tlsbench"
echo
go build -o "$bin/deliverbench" ./bench/deliverbench
"$bin/deliverbench"
