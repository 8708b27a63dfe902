package main

import (
	"encoding/binary"
	"flag"
	"io"
	"log"
	"net"
	"os"
)

// Origin modes, chosen by the first byte a client sends.
const (
	modeEcho = 'E' // echo everything back until EOF
	modeSink = 'S' // swallow everything until EOF, then answer the byte count (8 bytes, big endian)
)

// runOrigin is the origin server process: "bench origin -listen addr".
// It prints its address on stdout once it accepts.
func runOrigin(args []string) {
	fs := flag.NewFlagSet("origin", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
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
		go serveOrigin(c.(*net.TCPConn))
	}
}

func serveOrigin(c *net.TCPConn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeEcho:
		// Small buffer: echo conns are many and mostly idle.
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	case modeSink:
		n, _ := io.Copy(io.Discard, c) // net.TCPConn → Discard: kernel reads into a pooled buffer
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		_, _ = c.Write(b[:])
	}
}
