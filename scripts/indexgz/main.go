// Command indexgz compresses standard input to standard output as an
// indexed gzip stream (imagewriter.IndexedGzipWriter: independent members
// whose headers give their lengths), which imprint inflates on several cores
// and every gzip reader reads as usual. scripts/bench-image.sh uses it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/imprint-dev/imprint/imagewriter"
)

func main() {
	level := flag.Int("l", 6, "gzip level 1-9")
	member := flag.Int("m", imagewriter.DefaultGzipMemberSize, "uncompressed bytes per member")
	flag.Parse()
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	w, err := imagewriter.NewIndexedGzipWriter(out, *level, *member)
	if err == nil {
		_, err = io.Copy(w, bufio.NewReaderSize(os.Stdin, 1<<20))
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "indexgz:", err)
		os.Exit(1)
	}
}
