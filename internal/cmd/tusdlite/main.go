// Command tusdlite serves a real tusd (its handler and filestore, as uploader/tus/tustest runs
// it) on loopback in a process of its own: for the bench script, so that curl and chute upload
// to the same server, and for the soak test, which kills it and starts it again on the same
// address and data directory. It prints the creation URL, then serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chute-dev/chute/uploader/tus/tustest"
)

func main() {
	dir := flag.String("dir", "", "where uploads are stored (required)")
	addr := flag.String("addr", "127.0.0.1:0", "host:port to listen on; a fixed port lets a restarted tusdlite serve the same URL")
	throttle := flag.Int64("throttle", 0, "most PATCH bytes a second tusd reads per request (0: no limit)")
	stats := flag.Duration("stats", 0, `how often to print "stats created=N received=BYTES" on stderr when they changed (0: never)`)
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "tusdlite: --dir is required")
		os.Exit(2)
	}
	if err := serve(*dir, *addr, *throttle, *stats); err != nil {
		fmt.Fprintln(os.Stderr, "tusdlite:", err)
		os.Exit(1)
	}
}

func serve(dir, addr string, throttle int64, every time.Duration) error {
	srv, err := tustest.NewHandler(tustest.Options{Dir: dir})
	if err != nil {
		return err
	}
	srv.Throttle(throttle)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("http://" + l.Addr().String() + "/files/")
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	// The stats are printed as they change, not only at the end, because the soak test
	// kills tusdlite with SIGKILL: the last line printed is then what it had received.
	last := ""
	printStats := func() {
		st := srv.Stats()
		if line := fmt.Sprintf("stats created=%d received=%d", st.Created, st.BytesReceived); line != last {
			fmt.Fprintln(os.Stderr, line)
			last = line
		}
	}
	for {
		select {
		case <-tick:
			printStats()
		case err := <-served:
			return err
		case <-sig:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := hs.Shutdown(ctx)
			cancel()
			if every > 0 {
				printStats()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				_ = hs.Close()
				return nil
			}
			return err
		}
	}
}
