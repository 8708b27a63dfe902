package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// runReceiver is the "receiver" mode: an HTTP log endpoint for the
// prism-http target. It reads every POSTed batch (gunzipping it, as a real
// receiver would), counts the records (lines) and prints the count to
// stderr when stopped. Its address goes to stdout.
func runReceiver(args []string) {
	fs := flag.NewFlagSet("receiver", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var records atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		records.Add(int64(bytes.Count(data, []byte("\n"))))
	})}
	fmt.Println(ln.Addr().String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		fmt.Fprintf(os.Stderr, "receiver: %d records received\n", records.Load())
		os.Exit(0)
	}()
	log.Fatal(srv.Serve(ln))
}
