package main

import (
	"flag"
	"log"
	"net"
	"os"

	"github.com/prismproxy/prism/internal/relay"
)

// runRelayProxy is the bare relay as a proxy: accept, dial the origin,
// relay.Run. No logging, no config: it shows what the relay itself costs,
// apart from the rest of prism. "bench relayproxy -listen a -origin b".
func runRelayProxy(args []string) {
	fs := flag.NewFlagSet("relayproxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	origin := fs.String("origin", "", "origin address")
	_ = fs.Parse(args)
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString(l.Addr().String() + "\n")
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			oc, err := net.Dial("tcp", *origin)
			if err != nil {
				c.Close()
				return
			}
			relay.New(c, oc, relay.Options{}).Run()
		}()
	}
}
