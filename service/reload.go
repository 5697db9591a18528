package service

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/store"
)

// Reload applies a new valid config to the running daemon (SIGHUP): providers added, removed
// or changed, folders added, removed or changed. What did not change goes on untouched: the
// uploads of an unchanged provider are not interrupted. A changed provider's uploads in
// flight are checkpointed and resumed by the provider that replaces it; a removed provider's
// jobs stay queued in the database. The state database and the listen address cannot change
// without a restart: such a config is refused, and the running one stays.
func (d *Daemon) Reload(ctx context.Context, cfg *configs.Config) error {
	if cfg == nil {
		return errors.New("reload: no config")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.runCtx == nil {
		return errors.New("reload: the daemon is not running")
	}
	d.cfgMu.RLock()
	old := d.cfg
	d.cfgMu.RUnlock()
	if cfg.State != d.state {
		return fmt.Errorf("reload: state cannot change from %s to %s while chute runs; restart chute for that", d.state, cfg.State)
	}
	if cfg.Listen != old.Listen {
		return fmt.Errorf("reload: listen cannot change while chute runs (%q to %q); restart chute for that", old.Listen, cfg.Listen)
	}

	// The new secrets are scrubbed from the first message that could show them (a provider
	// refusing its options); a refused reload puts the running config's back.
	d.scrub.set(cfg)
	applied := false
	defer func() {
		if !applied {
			d.scrub.set(old)
		}
	}()

	// Build everything new first: a provider that cannot be built leaves all as it was.
	providers := make(map[string]*providerRun, len(cfg.Providers))
	var started, stopped []*providerRun
	var added, changed, removed []string
	for name, pc := range cfg.Providers {
		pr, ok := d.provider(name)
		if ok && sameProvider(pr.cfg, pc) {
			providers[name] = pr
			continue
		}
		npr, err := d.newProvider(name, pc)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		providers[name] = npr
		started = append(started, npr)
		if ok {
			stopped = append(stopped, pr)
			changed = append(changed, name)
		} else {
			added = append(added, name)
		}
	}
	d.cfgMu.RLock()
	for name, pr := range d.providers {
		if _, ok := cfg.Providers[name]; !ok {
			stopped = append(stopped, pr)
			removed = append(removed, name)
		}
	}
	d.cfgMu.RUnlock()
	rewatch := !sameFolders(old.Folders, cfg.Folders)
	var w = d.w
	if rewatch {
		nw, err := d.newWatcher(cfg)
		if err != nil {
			return fmt.Errorf("reload: %w", err)
		}
		w = nw
	}

	// Stop the workers of what changed or went, then swap, then start the new ones.
	for _, pr := range stopped {
		d.stopWorkers(pr)
	}
	folders := make(map[string]*configs.Folder, len(cfg.Folders))
	for _, f := range cfg.Folders {
		folders[f.Path] = f
		d.m.folder(f.Path)
	}
	d.cfgMu.Lock()
	d.cfg, d.providers, d.folders, d.w = cfg, providers, folders, w
	d.cfgMu.Unlock()
	for _, pr := range started {
		d.startWorkers(d.runCtx, pr)
		if err := d.resumeProvider(pr.cfg.Name); err != nil {
			d.log.Error("reload: cannot queue the unfinished jobs of a provider", "provider", pr.cfg.Name, "err", err)
		}
	}
	if rewatch {
		select {
		case d.rewatch <- struct{}{}:
		default:
		}
	}
	applied = true
	slices.Sort(added)
	slices.Sort(changed)
	slices.Sort(removed)
	d.log.Info("config reloaded", "providers_added", added, "providers_changed", changed, "providers_removed", removed,
		"folders", len(cfg.Folders), "folders_changed", rewatch)
	return nil
}

// resumeProvider queues the unfinished jobs of the provider called name.
func (d *Daemon) resumeProvider(name string) error {
	jobs, err := d.st.List(store.Filter{Provider: name, States: []store.State{store.Uploading, store.Queued, store.RetryWait}})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.State == store.RetryWait {
			d.scheduleAt(j, j.NextAttempt)
		} else {
			d.enqueue(j)
		}
	}
	return nil
}

// sameProvider tells whether two configs of a provider build the same provider.
func sameProvider(a, b *configs.Provider) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Endpoint == b.Endpoint &&
		a.Concurrency == b.Concurrency && a.SmallConcurrency == b.SmallConcurrency && a.MaxAttempts == b.MaxAttempts &&
		reflect.DeepEqual(a.Options, b.Options)
}

// sameFolders tells whether two folder lists watch the same way.
func sameFolders(a, b []*configs.Folder) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := *a[i], *b[i]
		x.Line, y.Line = 0, 0
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
