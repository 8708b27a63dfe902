#!/bin/sh
# Runs the L4 benchmark: direct vs prism vs the bare relay vs HAProxy vs
# nginx stream on loopback. Extra arguments go to the harness, e.g.
#   bench/run.sh -sections idle,conn -idle 3000
set -eu
cd "$(dirname "$0")/.."
go build -o /tmp/prism-bench ./bench
exec /tmp/prism-bench "$@"
