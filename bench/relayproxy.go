package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

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
	go memStatsOnSignal()
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
			// Start, not Run: the accepting goroutine ends here, so an idle
			// connection holds no goroutine at all.
			relay.New(c, oc, relay.Options{}).Start(func(relay.Result) {})
		}()
	}
}

// memStatsOnSignal prints the Go memory statistics to stderr on SIGUSR1, to
// see where an idle connection's memory goes (stacks vs heap).
func memStatsOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	for range ch {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(os.Stderr, "goroutines %d stack_inuse %d heap_inuse %d heap_alloc %d heap_sys %d heap_released %d next_gc %d sys %d\n",
			runtime.NumGoroutine(), m.StackInuse, m.HeapInuse, m.HeapAlloc, m.HeapSys, m.HeapReleased, m.NextGC, m.Sys)
	}
}
