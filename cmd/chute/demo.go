package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/chute-dev/chute/uploader/gcore/gcoretest"
	"github.com/chute-dev/chute/uploader/redgifs/redgifstest"
	"github.com/chute-dev/chute/uploader/tus/tustest"
	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
	"github.com/chute-dev/chute/uploader/uploadgig/uploadgigtest"
	"github.com/chute-dev/chute/uploader/xvid/xvidtest"
)

// emulator is one provider's local stand-in, as `chute demo` runs it.
type emulator struct {
	name   string // provider name in the demo config
	yaml   string // the provider's config block, indented under `providers:`
	inbox  string
	closer func() error
}

// cmdDemo starts local emulators of every provider, an inbox per provider and the daemon,
// drops a sample file into each inbox, and runs until interrupted.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chute demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "where the demo keeps its inboxes, servers and state (default: a new temporary directory)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "chute-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	emus, err := startEmulators(root)
	defer func() {
		for _, e := range emus {
			_ = e.closer()
		}
	}()
	if err != nil {
		return err
	}

	cfgPath := filepath.Join(root, "chute.yaml")
	cfgText := fmt.Sprintf("# Written by `chute demo`: every provider points at a local emulator.\nstate: %s\nproviders:\n", filepath.Join(root, "state.db"))
	for _, e := range emus {
		cfgText += e.yaml
	}
	cfgText += "folders:\n"
	for _, e := range emus {
		if err := os.MkdirAll(e.inbox, 0o755); err != nil {
			return err
		}
		cfgText += fmt.Sprintf("  - path: %s\n    provider: %s\n    settle: 1s\n", e.inbox, e.name)
	}
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := loadConfig(cfgPath, stderr)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "chute demo: emulators of every provider are running on loopback.\n")
	fmt.Fprintf(stdout, "config: %s\n", cfgPath)
	for _, e := range emus {
		sample := filepath.Join(e.inbox, "sample.mp4")
		if err := writeSample(sample, 2<<20); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  drop files into %s (uploads to %s); a sample is there already\n", e.inbox, e.name)
	}
	fmt.Fprintf(stdout, "Each finished file gets a <file>.chute.json sidecar beside it. In another terminal:\n")
	fmt.Fprintf(stdout, "  chute status --config %s\nPress Ctrl-C to stop.\n", cfgPath)
	return runDaemon(ctx, cfg, newLogger(cfg, stderr))
}

// startEmulators starts one emulator per provider type under root.
func startEmulators(root string) ([]*emulator, error) {
	var emus []*emulator
	tusSrv, err := tustest.Start(tustest.Options{Dir: filepath.Join(root, "servers", "tusd")})
	if err != nil {
		return emus, fmt.Errorf("start the tus emulator: %w", err)
	}
	emus = append(emus, &emulator{
		name:   "own",
		yaml:   fmt.Sprintf("  own:\n    type: tus\n    endpoint: %s\n", tusSrv.URL),
		inbox:  filepath.Join(root, "inbox", "tus"),
		closer: tusSrv.Close,
	})
	const demoKey = "demo-api-key"
	gc, err := gcoretest.Start(gcoretest.Options{Dir: filepath.Join(root, "servers", "gcore"), APIKey: demoKey, Step: 2 * time.Second})
	if err != nil {
		return emus, fmt.Errorf("start the gcore emulator: %w", err)
	}
	emus = append(emus, &emulator{
		name:   "gc",
		yaml:   fmt.Sprintf("  gc:\n    type: gcore\n    endpoint: %s\n    api_key: %s\n    poll_interval: 1s\n", gc.URL, demoKey),
		inbox:  filepath.Join(root, "inbox", "gcore"),
		closer: gc.Close,
	})
	// RedGIFs' signed PUT URLs point at the in-process S3 stand-in: the demo needs no MinIO.
	bucket, err := s3test.StartStandIn(s3test.Options{Dir: filepath.Join(root, "servers", "s3")})
	if err != nil {
		return emus, fmt.Errorf("start the S3 stand-in: %w", err)
	}
	const demoToken = "demo-redgifs-token"
	rg, err := redgifstest.Start(redgifstest.Options{S3: bucket, Token: demoToken, ReadyAfter: 2 * time.Second})
	if err != nil {
		bucket.Close()
		return emus, fmt.Errorf("start the redgifs emulator: %w", err)
	}
	emus = append(emus, &emulator{
		name:   "rg",
		yaml:   fmt.Sprintf("  rg:\n    type: redgifs\n    endpoint: %s\n    token: %s\n    tags: [demo]\n", rg.URL, demoToken),
		inbox:  filepath.Join(root, "inbox", "redgifs"),
		closer: func() error { return errors.Join(rg.Close(), bucket.Close()) },
	})
	const demoUser, demoPass = "demo@example.com", "demo-pass"
	ug, err := uploadgigtest.Start(uploadgigtest.Options{Dir: filepath.Join(root, "servers", "uploadgig"), User: demoUser, Pass: demoPass, LoginsPerMinute: 60})
	if err != nil {
		return emus, fmt.Errorf("start the uploadgig emulator: %w", err)
	}
	emus = append(emus, &emulator{
		name:   "ug",
		yaml:   fmt.Sprintf("  ug:\n    type: uploadgig\n    endpoint: %s\n    user: %s\n    pass: %s\n    login_interval: 1s\n    rate_limit_wait: 1m\n", ug.URL, demoUser, demoPass),
		inbox:  filepath.Join(root, "inbox", "uploadgig"),
		closer: ug.Close,
	})
	// Xvid's upload forms go to the in-process S3 stand-in: the demo needs no MinIO.
	s3, err := s3test.StartStandIn(s3test.Options{Dir: filepath.Join(root, "servers", "xvid-s3")})
	if err != nil {
		return emus, fmt.Errorf("start the S3 stand-in for the xvid emulator: %w", err)
	}
	const xvID, xvSecret = "demo-client", "demo-client-secret"
	xv, err := xvidtest.Start(xvidtest.Options{ClientID: xvID, ClientSecret: xvSecret, S3: s3, Completing: 2 * time.Second})
	if err != nil {
		s3.Close()
		return emus, fmt.Errorf("start the xvid emulator: %w", err)
	}
	emus = append(emus, &emulator{
		name: "xv",
		yaml: fmt.Sprintf("  xv:\n    type: xvid\n    endpoint: %s\n    client_id: %s\n    client_secret: %s\n    pipeline_id: %s\n    poll_interval: 1s\n",
			xv.URL, xvID, xvSecret, xvidtest.DefaultPipeline),
		inbox:  filepath.Join(root, "inbox", "xvid"),
		closer: func() error { return errors.Join(xv.Close(), s3.Close()) },
	})
	return emus, nil
}

func writeSample(path string, size int64) error {
	tmp := filepath.Join(filepath.Dir(path), ".sample.part")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_ = os.Chtimes(tmp, time.Now(), time.Now())
	return os.Rename(tmp, path)
}
