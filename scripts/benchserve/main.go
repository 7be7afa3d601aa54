// Command benchserve serves a directory over HTTP on loopback for
// scripts/bench-image.sh (Range requests, sendfile). It prints its address.
// With -die-after N it exits, dropping every connection, once it has sent N
// bytes of file content: a mirror killed in the middle of a download.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dir := flag.String("dir", ".", "directory to serve")
	dieAfter := flag.Int64("die-after", 0, "exit after sending this many bytes of file content (0: never)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(os.Stdout, ln.Addr().String())
	os.Stdout.Sync()
	var h http.Handler = http.FileServer(http.Dir(*dir))
	if *dieAfter > 0 {
		fs := h
		var sent atomic.Int64
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fs.ServeHTTP(&dying{ResponseWriter: w, sent: &sent, limit: *dieAfter}, r)
		})
	}
	log.Fatal(http.Serve(ln, h))
}

type dying struct {
	http.ResponseWriter
	sent  *atomic.Int64
	limit int64
}

func (d *dying) Write(p []byte) (int, error) {
	if left := d.limit - d.sent.Load(); int64(len(p)) >= left {
		d.ResponseWriter.Write(p[:max(left, 0)])
		d.ResponseWriter.(http.Flusher).Flush()
		fmt.Fprintf(os.Stderr, "benchserve: sent %d bytes, dying\n", d.limit)
		os.Exit(3)
	}
	n, err := d.ResponseWriter.Write(p)
	d.sent.Add(int64(n))
	return n, err
}
