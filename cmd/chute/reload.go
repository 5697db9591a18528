package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/chute-dev/chute/configs"
)

// reloader is the engine's reload, service.Daemon.Reload: it applies a new valid config
// (folders and providers added, removed or changed) without dropping the uploads of what did
// not change. Asserted rather than called so that chute builds before the engine has it.
type reloader interface {
	Reload(ctx context.Context, cfg *configs.Config) error
}

// reload loads and validates the config at path again and hands it to the running daemon d.
// A config that does not load or is invalid is logged, every problem on its own line, and
// the running config stays: it returns nil then. It never stops the daemon.
func reload(ctx context.Context, d any, path string, log *slog.Logger) *configs.Config {
	log.Info("reload: SIGHUP received, reading the config again", "config", path)
	cfg, err := readConfig(path)
	if err != nil {
		var ps configs.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				log.Error("reload: config problem", "problem", p.String())
			}
			log.Error("reload: the config is invalid; the running config stays", "config", path, "problems", len(ps))
			return nil
		}
		log.Error("reload: the config cannot be read; the running config stays", "config", path, "err", err)
		return nil
	}
	r, ok := d.(reloader)
	if !ok {
		log.Warn("reload: not supported yet; the running config stays (restart chute to apply the new one)", "config", path)
		return nil
	}
	if err := r.Reload(ctx, cfg); err != nil {
		log.Error("reload: the daemon refused the new config; the running config stays", "err", err)
		return nil
	}
	log.Info("reload: applied", "config", path, "folders", len(cfg.Folders), "providers", len(cfg.Providers))
	return cfg
}
