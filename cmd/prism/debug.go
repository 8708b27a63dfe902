//go:build prismdebug

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// A binary built with -tags prismdebug (the soak in bench/soak does) serves
// net/http/pprof on PRISM_DEBUG_ADDR, which must be a loopback address, so
// that a harness can sample goroutines. Release builds have none of this.
func init() {
	addr := os.Getenv("PRISM_DEBUG_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "PRISM_DEBUG_ADDR %q: want a loopback host:port\n", addr)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "PRISM_DEBUG_ADDR: %v\n", err)
		os.Exit(2)
	}
	go func() { _ = http.Serve(ln, nil) }()
}
