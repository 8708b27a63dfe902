package main

import (
	"flag"
	"log"
	"os"

	"github.com/prismproxy/prism/bench/internal/echo"
)

// runOrigin is the origin server process: "bench origin -listen addr"
// (echo or sink, see package echo). It prints its address on stdout once
// it accepts, then serves until killed.
func runOrigin(args []string) {
	fs := flag.NewFlagSet("origin", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(args)
	l, err := echo.Listen(*listen)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString(l.Addr().String() + "\n")
	select {}
}
