// Package echo is the TCP origin the benchmark harnesses load: the first
// byte a client sends picks echo (for connection rates and idle
// connections) or sink (for bulk throughput).
package echo

import (
	"encoding/binary"
	"io"
	"net"
)

// Modes, chosen by the first byte a client sends.
const (
	ModeEcho = 'E' // echo everything back until EOF
	ModeSink = 'S' // swallow everything until EOF, then answer the byte count (8 bytes, big endian)
)

// Listen serves echo/sink connections on addr in this process until the
// listener is closed.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go Serve(c)
		}
	}()
	return l, nil
}

// Serve answers one connection and closes it.
func Serve(c net.Conn) {
	defer c.Close()
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case ModeEcho:
		// Small buffer: echo connections are many and mostly idle.
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
	case ModeSink:
		// A *net.TCPConn into io.Discard reads through a pooled buffer.
		n, _ := io.Copy(io.Discard, c)
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		_, _ = c.Write(b[:])
	}
}
