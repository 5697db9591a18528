package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/chute-dev/chute/configs"
	"github.com/chute-dev/chute/service"
)

// reload loads and validates the config at path again and hands it to the running daemon d.
// A config that does not load or is invalid is logged, every problem on its own line, and
// the running config stays: it returns nil then. It never stops the daemon.
func reload(ctx context.Context, d *service.Daemon, path string, log *slog.Logger) *configs.Config {
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
	if err := d.Reload(ctx, cfg); err != nil {
		log.Error("reload: the daemon refused the new config; the running config stays", "err", err)
		return nil
	}
	log.Info("reload: applied", "config", path, "folders", len(cfg.Folders), "providers", len(cfg.Providers))
	return cfg
}
