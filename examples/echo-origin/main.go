// Command echo-origin is a tiny TCP origin for trying prism out: it echoes
// every byte back, and prints the PROXY protocol header it receives, if any.
//
//	go run ./examples/echo-origin -listen 127.0.0.1:9000
package main

import (
	"bufio"
	"bytes"
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
		go serve(c)
	}
}

// serve prints the connection's PROXY header, if it starts with one, and
// echoes everything after it.
func serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	if hasHeader(br) {
		h, err := proxyproto.Read(br)
		if err != nil {
			log.Printf("%s: bad PROXY header: %v", c.RemoteAddr(), err)
			return
		}
		log.Printf("%s: PROXY v%d header, client %s", c.RemoteAddr(), h.Version, h.SourceAddr)
	}
	n, _ := io.Copy(c, br)
	log.Printf("%s: echoed %d bytes", c.RemoteAddr(), n)
}

// signatures open a PROXY header: v1's "PROXY " and v2's 12 bytes.
var signatures = [][]byte{[]byte("PROXY "), proxyproto.SIGV2}

// hasHeader reports whether br starts with a PROXY header's signature,
// waiting for more bytes only while those seen could still begin one.
// (proxyproto.Read waits for 12 bytes once the first is a 'P' or a '\r',
// so a client that sends "PING\n" and waits would never get its echo.)
func hasHeader(br *bufio.Reader) bool {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false // the client sent fewer bytes and closed
		}
		possible := false
		for _, sig := range signatures {
			if len(b) >= len(sig) && bytes.HasPrefix(b, sig) {
				return true
			}
			if bytes.HasPrefix(sig, b) {
				possible = true
			}
		}
		if !possible {
			return false
		}
	}
}
