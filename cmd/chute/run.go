package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/store"
	"github.com/chute-dev/chute/uploader"
	"github.com/chute-dev/chute/uploader/gcore"
	"github.com/chute-dev/chute/uploader/redgifs"
	"github.com/chute-dev/chute/uploader/tus"
	"github.com/chute-dev/chute/uploader/uploadgig"
	"github.com/chute-dev/chute/uploader/xvid"
)

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

const usage = `chute: a watch-folder upload daemon

Usage:
  chute run     [--config FILE]            run the daemon in the foreground
  chute check   [--config FILE] [--online] validate the config and show what would be watched
  chute status  [--config FILE] [--json] [--state S,...] [--provider P] [--limit N]
                [--watch [--interval D]] [ID]
                                           list the jobs (running uploads with rate and
                                           time left), or show job ID in full
  chute retry   [--config FILE] ID... | --failed
                                           put failed jobs back in the queue, or run a
                                           job waiting for its next attempt now
  chute reupload [--config FILE] PATH...   upload a done file again, as a new job
  chute demo    [--dir DIR]                try chute against local emulators of every provider
  chute version                            print version and build information

  chute install [--user] [--config FILE] [--print]
                                           install chute as a system (or --user) service;
                                           --print shows the unit and installs nothing
  chute uninstall|start|stop|restart [--user]
                                           manage the installed service

The config is --config, else $CHUTE_CONFIG, else %s.
`

// registry lists the provider types this build knows.
func registry() *uploader.Registry {
	return uploader.NewRegistry(tus.Type(), gcore.Type(), redgifs.Type(), uploadgig.Type(), xvid.Type())
}

// run is the whole program but for signals and the exit status; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, configHint())
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, stderr)
	case "check":
		return cmdCheck(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "retry":
		return cmdRetry(ctx, rest, stdout, stderr)
	case "reupload":
		return cmdReupload(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "install":
		return cmdInstall(ctx, rest, stdout, stderr)
	case "uninstall", "start", "stop", "restart":
		return cmdControl(ctx, cmd, rest, stdout, stderr)
	case "version", "--version", "-v":
		return cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, configHint())
		return nil
	default:
		fmt.Fprintf(stderr, usage, configHint())
		return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q", cmd)}
	}
}

// parse parses flags that may come before or after the arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &exitError{code: 2}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("chute "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("config", "", "config file (default: $CHUTE_CONFIG, else "+configHint()+")")
	return fs, cfg
}

// loadConfig finds and loads the config; invalid configs are exit status 2 with one line per
// problem.
func loadConfig(flagValue string, stderr io.Writer) (*configs.Config, error) {
	path, err := defaultLookup().find(flagValue)
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(path)
	if err != nil {
		var ps configs.Problems
		if errors.As(err, &ps) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", path, len(ps))
			for _, p := range ps {
				fmt.Fprintln(stderr, "  "+p.String())
			}
			return nil, &exitError{code: 2, msg: "invalid config"}
		}
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	return cfg, nil
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	fs, cfgPath := newFlags("run", stderr)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, stderr)
	if err != nil {
		return err
	}
	return runDaemon(ctx, cfg, newLogger(cfg, stderr))
}

func runDaemon(ctx context.Context, cfg *configs.Config, log *slog.Logger) error {
	ready := newReadySignal()
	d, err := service.New(service.Options{Config: cfg, Registry: registry(), Logger: log, Ready: ready.fire, Version: version})
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	return serveDaemon(ctx, d, cfg, log, ready.ch)
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("check", stderr)
	online := fs.Bool("online", false, "also test each provider's credentials")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is valid.\nstate: %s\n", cfg.Source, cfg.State)
	for _, f := range cfg.Folders {
		p := cfg.Providers[f.Provider]
		fmt.Fprintf(stdout, "watch %s -> %s (%s)", f.Path, f.Provider, p.Type)
		if f.Recursive {
			fmt.Fprint(stdout, ", recursive")
		}
		if len(f.Include) > 0 {
			fmt.Fprintf(stdout, ", include %s", strings.Join(f.Include, " "))
		}
		if len(f.Exclude) > 0 {
			fmt.Fprintf(stdout, ", exclude %s", strings.Join(f.Exclude, " "))
		}
		fmt.Fprintf(stdout, ", settle %s, after %s", f.Settle, f.After)
		if f.After == configs.AfterMove {
			fmt.Fprintf(stdout, " to %s", f.MoveTo)
		}
		fmt.Fprintln(stdout)
	}
	if !*online {
		return nil
	}
	d, err := service.New(service.Options{Config: cfg, Registry: registry()})
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	bad := 0
	for _, name := range sortedKeys(cfg.Providers) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.CheckProvider(cctx, name)
		cancel()
		switch {
		case errors.Is(err, service.ErrNoCheck):
			fmt.Fprintf(stdout, "provider %s: no online check for type %s\n", name, cfg.Providers[name].Type)
		case err != nil:
			bad++
			fmt.Fprintf(stdout, "provider %s: FAILED: %v\n", name, err)
		default:
			fmt.Fprintf(stdout, "provider %s: credentials accepted\n", name)
		}
	}
	if bad > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("%d provider(s) failed the online check", bad)}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// withStore runs fn on the state database opened read-only, or returns (false, nil) when a
// running daemon holds it.
func withStore(path string, readOnly bool, fn func(*store.Store) error) (bool, error) {
	st, err := store.Open(path, store.Options{ReadOnly: readOnly, Timeout: 300 * time.Millisecond})
	if errors.Is(err, store.ErrInUse) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	defer st.Close()
	return true, fn(st)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}

func cmdRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("retry", stderr)
	failed := fs.Bool("failed", false, "retry every failed job")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var ids []uint64
	for _, a := range pos {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("retry: %q is not a job id (see `chute status`)", a)}
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 && !*failed {
		return &exitError{code: 2, msg: "retry: name job ids, or --failed"}
	}
	cfg, err := loadConfig(*cfgPath, stderr)
	if err != nil {
		return err
	}
	var requeued []uint64
	var rerr error
	opened, err := withStore(cfg.State, false, func(st *store.Store) error {
		jobs, err := service.Retry(ctx, st, ids, *failed)
		for _, j := range jobs {
			requeued = append(requeued, j.ID)
		}
		rerr = err
		return nil
	})
	if err != nil {
		return err
	}
	if !opened {
		requeued, rerr = service.RequestRetry(ctx, cfg.State, ids, *failed)
	}
	for _, id := range requeued {
		fmt.Fprintf(stdout, "job %d queued again\n", id)
	}
	if len(requeued) == 0 && rerr == nil {
		fmt.Fprintln(stdout, "no failed jobs")
	}
	return rerr
}
