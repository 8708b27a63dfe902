// Command echo-origin is a tiny TCP origin for trying prism out: it echoes
// every byte back, and prints the PROXY protocol header it receives, if any.
//
//	go run ./examples/echo-origin -listen 127.0.0.1:9000
package main

import (
	"bufio"
	"flag"
	"io"
	"log"
	"net"

	"github.com/pires/go-proxyproto"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo origin listening on %s", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			if h, err := proxyproto.Read(br); err == nil {
				log.Printf("%s: PROXY v%d header, client %s", c.RemoteAddr(), h.Version, h.SourceAddr)
			}
			n, _ := io.Copy(c, br)
			log.Printf("%s: echoed %d bytes", c.RemoteAddr(), n)
		}()
	}
}
