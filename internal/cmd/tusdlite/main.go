// Command tusdlite serves a real tusd (its handler and filestore, as uploader/tus/tustest runs
// it) on loopback for the bench script, so that curl and chute upload to the same server, in
// a process of its own. It prints the creation URL, then serves until killed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/chute-dev/chute/uploader/tus/tustest"
)

func main() {
	dir := flag.String("dir", "", "where uploads are stored")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "tusdlite: --dir is required")
		os.Exit(2)
	}
	srv, err := tustest.Start(tustest.Options{Dir: *dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tusdlite:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
	srv.Close()
}
