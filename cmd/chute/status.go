package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
	"github.com/chute-dev/chute/store"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	states := fs.String("state", "", "show only the jobs in these states, comma-separated: queued, uploading, retry_wait, done, failed")
	provider := fs.String("provider", "", "show only the jobs of this provider")
	limit := fs.Int("limit", 0, "show at most this many jobs (0: all)")
	watch := fs.Bool("watch", false, "refresh until interrupted: in place on a terminal, else a block of plain lines each time")
	interval := fs.Duration("interval", time.Second, "with --watch, the time between refreshes")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &exitError{code: 2, msg: "status: name at most one job id"}
	}
	var id uint64
	if len(pos) == 1 {
		if id, err = strconv.ParseUint(pos[0], 10, 64); err != nil || id == 0 {
			return &exitError{code: 2, msg: fmt.Sprintf("status: %q is not a job id (see `chute status`)", pos[0])}
		}
	}
	filter, err := service.ParseFilter(url.Values{"state": {*states}, "provider": {*provider}, "limit": {strconv.Itoa(*limit)}})
	if err != nil {
		return &exitError{code: 2, msg: "status: " + err.Error()}
	}
	if *interval < 100*time.Millisecond {
		return &exitError{code: 2, msg: "status: --interval must be at least 100ms"}
	}
	cfg, err := loadConfig(*cfgPath, stderr)
	if err != nil {
		return err
	}
	show := func(w io.Writer) error {
		if id != 0 {
			j, err := fetchJob(ctx, cfg, id)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeIndented(w, j)
			}
			writeJob(w, j, time.Now())
			return nil
		}
		jobs, err := fetchJobs(ctx, cfg, filter)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndented(w, jobs)
		}
		return writeJobs(w, jobs)
	}
	if !*watch {
		if id == 0 && !*asJSON {
			for _, line := range serviceStates() {
				fmt.Fprintln(stdout, line)
			}
		}
		return show(stdout)
	}
	return watchStatus(ctx, stdout, *interval, show)
}

// watchStatus shows the status every interval until ctx ends. On a terminal each frame is
// drawn over the last one; elsewhere (a pipe, a file) frames follow each other as plain
// lines under a time stamp.
func watchStatus(ctx context.Context, stdout io.Writer, interval time.Duration, show func(io.Writer) error) error {
	f, ok := stdout.(*os.File)
	tty := ok && isTerminal(f.Fd())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var frame bytes.Buffer
		fmt.Fprintf(&frame, "chute status at %s, every %s (Ctrl-C stops)\n", time.Now().Format(time.TimeOnly), interval)
		if err := show(&frame); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(&frame, "error: %v\n", err)
		}
		if tty {
			// Home, each line cleared to its end, then everything below: no flicker.
			out := "\x1b[H" + strings.ReplaceAll(frame.String(), "\n", "\x1b[K\r\n") + "\x1b[J"
			if _, err := io.WriteString(stdout, out); err != nil {
				return err
			}
		} else {
			frame.WriteString("\n")
			if _, err := stdout.Write(frame.Bytes()); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fetchJobs asks the running daemon for the jobs, or reads them from the database when no
// daemon runs.
func fetchJobs(ctx context.Context, cfg *configs.Config, f store.Filter) ([]service.JobStatus, error) {
	jobs, err := service.QueryJobsFiltered(ctx, cfg.State, f)
	if !errors.Is(err, service.ErrNoDaemon) {
		return jobs, err
	}
	jobs = []service.JobStatus{}
	if _, err := os.Stat(cfg.State); errors.Is(err, os.ErrNotExist) {
		return jobs, nil
	}
	opened, err := withStore(cfg.State, true, func(st *store.Store) error {
		var err error
		jobs, err = service.ListJobsFiltered(st, f)
		return err
	})
	if err == nil && !opened {
		// A daemon holds the database and came up since the first question: ask it again.
		return service.QueryJobsFiltered(ctx, cfg.State, f)
	}
	return jobs, err
}

// fetchJob is fetchJobs for one job, in full.
func fetchJob(ctx context.Context, cfg *configs.Config, id uint64) (service.JobStatus, error) {
	j, err := service.QueryJob(ctx, cfg.State, id)
	if !errors.Is(err, service.ErrNoDaemon) {
		return j, err
	}
	if _, err := os.Stat(cfg.State); errors.Is(err, os.ErrNotExist) {
		return j, fmt.Errorf("job %d: no such job (chute has not run yet)", id)
	}
	opened, err := withStore(cfg.State, true, func(st *store.Store) error {
		var err error
		j, err = service.JobDetail(st, id)
		return err
	})
	if err == nil && !opened {
		return service.QueryJob(ctx, cfg.State, id)
	}
	return j, err
}

// writeJobs prints a table of jobs, with a summary line of their states.
func writeJobs(w io.Writer, jobs []service.JobStatus) error {
	if len(jobs) == 0 {
		fmt.Fprintln(w, "no jobs yet")
		return nil
	}
	counts := map[store.State]int{}
	for _, j := range jobs {
		counts[j.State]++
	}
	var parts []string
	for _, s := range store.States() {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(w, "%d %s: %s\n", len(jobs), plural(len(jobs), "job"), strings.Join(parts, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFILE\tPROVIDER\tSTATE\tPROGRESS\tRATE\tLEFT\tATTEMPTS\tURL / NOTE / LAST ERROR")
	for _, j := range jobs {
		rate, left := "-", "-"
		if j.Rate > 0 {
			rate = humanBytes(j.Rate) + "/s"
			if j.ETA > 0 {
				left = humanDuration(time.Duration(j.ETA * float64(time.Second)))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", j.ID, j.File, j.Provider, j.State, progress(j), rate, left, j.Attempts, oneLine(detailOf(j), 400))
	}
	return tw.Flush()
}

// progress is "sent/size percent" for a job under way, its percentage otherwise.
func progress(j service.JobStatus) string {
	switch {
	case j.State == store.Done:
		return "100%"
	case j.Size <= 0:
		return "-"
	case j.State == store.Uploading || j.Sent > 0:
		return fmt.Sprintf("%s/%s %d%%", humanBytes(float64(j.Sent)), humanBytes(float64(j.Size)), j.Sent*100/j.Size)
	}
	return "0%"
}

// detailOf is what the table's last column says of a job.
func detailOf(j service.JobStatus) string {
	switch {
	case j.Note != "":
		return j.Note
	case j.NextAttempt != nil:
		return fmt.Sprintf("next attempt %s: %s", j.NextAttempt.Local().Format(time.TimeOnly), j.LastError)
	case j.URL != "":
		return j.URL
	}
	return j.LastError
}

// writeJob prints one job in full.
func writeJob(w io.Writer, j service.JobStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	fmt.Fprintf(tw, "job %d\n", j.ID)
	line("file", "%s", j.File)
	if j.MovedTo != "" {
		line("moved to", "%s", j.MovedTo)
	}
	if j.Folder != "" {
		line("folder", "%s", j.Folder)
	}
	line("provider", "%s", j.Provider)
	state := string(j.State)
	if j.Note != "" {
		state += " (" + j.Note + ")"
	}
	line("state", "%s", state)
	p := fmt.Sprintf("%s of %s", humanBytes(float64(j.Sent)), humanBytes(float64(j.Size)))
	if j.Size > 0 {
		p += fmt.Sprintf(" (%d%%)", j.Sent*100/j.Size)
	}
	if j.Rate > 0 {
		p += ", " + humanBytes(j.Rate) + "/s"
		if j.ETA > 0 {
			p += ", " + humanDuration(time.Duration(j.ETA*float64(time.Second))) + " left"
		}
	}
	line("progress", "%s", p)
	line("attempts", "%d", j.Attempts)
	line("queued", "%s", stamp(j.QueuedAt))
	if j.StartedAt != nil {
		line("last started", "%s", stamp(*j.StartedAt))
	}
	if j.NextAttempt != nil {
		line("next attempt", "%s (in %s)", stamp(*j.NextAttempt), humanDuration(j.NextAttempt.Sub(now)))
	}
	if j.FinishedAt != nil {
		line("finished", "%s", stamp(*j.FinishedAt))
	}
	if j.URL != "" || j.ResultID != "" {
		line("result", "%s (id %s)", j.URL, j.ResultID)
		for _, k := range sortedKeys(j.Extra) {
			line("  "+k, "%s", j.Extra[k])
		}
	}
	if j.Sidecar != "" {
		line("sidecar", "%s", j.Sidecar)
	} else {
		line("sidecar", "none yet")
	}
	if j.LastError != "" {
		line("last error", "%s", oneLine(j.LastError, 2000))
	}
	tw.Flush()
	if len(j.History) == 0 {
		fmt.Fprintln(w, "history: no errors")
		return
	}
	fmt.Fprintln(w, "history:")
	for _, e := range j.History {
		what := e.What
		if e.Kind != "" {
			what += " (" + e.Kind + ")"
		}
		text := oneLine(e.Text, 2000)
		if e.URL != "" {
			text += ": " + e.URL
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", stamp(e.At), what, text)
	}
}

func stamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// humanBytes writes n bytes in binary units: 512 B, 1.5 KiB, 12.0 MiB.
func humanBytes(n float64) string {
	if n < 1024 {
		return fmt.Sprintf("%.0f B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// humanDuration writes d to the second: 45s, 3m05s, 2h10m.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func cmdReupload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("reupload", stderr)
	paths, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return &exitError{code: 2, msg: "reupload: name the files to upload again"}
	}
	cfg, err := loadConfig(*cfgPath, stderr)
	if err != nil {
		return err
	}
	var problems []string
	for _, p := range paths {
		id, err := service.RequestReupload(ctx, cfg.State, p)
		when := "the daemon uploads it now"
		if errors.Is(err, service.ErrNoDaemon) {
			when = "it is uploaded at the next start"
			var opened bool
			opened, err = withStore(cfg.State, false, func(st *store.Store) error {
				j, err := service.Reupload(ctx, st, p)
				id = j.ID
				return err
			})
			if err == nil && !opened {
				err = errors.New("the state database is in use, and no daemon answers on its control socket")
			}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		fmt.Fprintf(stdout, "%s: job %d queued; %s\n", p, id, when)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}
