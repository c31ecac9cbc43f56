package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/store"
)

// ExclusiveConfig configures Exclusive.
type ExclusiveConfig struct {
	// Leases is the store the instances share (store/postgres, or one SQLite file on one
	// machine). Required.
	Leases store.LeaseStore
	// Owner names this instance; default: the host name and a random suffix, new at each
	// start.
	Owner string
	// TTL is how long a lease lasts unless released: how long the other instances wait for
	// a crashed one's conversations. Default 15 s; an event whose handling takes longer
	// renews it.
	TTL time.Duration
	// Logger receives lease errors. Default slog.Default().
	Logger *slog.Logger
	// now is the clock (tests).
	now func() time.Time
}

// exclusiveRetry bounds the wait between two tries to take a lease another instance holds.
const exclusiveRetry = 200 * time.Millisecond

// Exclusive returns a middleware for bot instances that share a store: an event is handled
// only while this instance holds the lease on its conversation (store.LeaseStore), so that
// two instances never handle one conversation's events at once, as when a dispatcher moves
// a conversation from one to another. The lease is taken before the rest of the chain runs
// (waiting while another instance holds it, until the event's context ends) and released
// after; it runs out by itself (ExclusiveConfig.TTL) when its instance dies. Put it first in
// the chain. An event whose lease cannot be had (the store fails, or the wait outlasts the
// event's context) is still handled, and logged: a message answered 200 is never dropped.
func Exclusive(cfg ExclusiveConfig) (bot.Middleware, error) {
	if cfg.Leases == nil {
		return nil, errors.New("handlers: Exclusive needs ExclusiveConfig.Leases (the store the instances share)")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = host + "-" + hex.EncodeToString(b[:])
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return func(next bot.Handler) bot.Handler {
		return bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
			c, ok := convOf(ev)
			if !ok {
				return next.Handle(ctx, w, ev)
			}
			held := cfg.take(ctx, c.Key)
			if held {
				stop := cfg.renew(ctx, c.Key)
				defer func() {
					stop()
					// Released even when the event's context has ended.
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := cfg.Leases.ReleaseLease(rctx, c.Key, cfg.Owner); err != nil {
						cfg.Logger.Warn("conversation lease not released: it runs out by itself", "key", c.Key, "err", err)
					}
				}()
			}
			return next.Handle(ctx, w, ev)
		})
	}, nil
}

// take waits for the lease on key and reports whether it got it.
func (cfg ExclusiveConfig) take(ctx context.Context, key string) bool {
	wait := 10 * time.Millisecond
	for {
		ok, err := cfg.Leases.AcquireLease(ctx, key, cfg.Owner, cfg.now(), cfg.TTL)
		switch {
		case err != nil:
			cfg.Logger.Warn("conversation lease not taken: the event is handled without it", "key", key, "err", err)
			return false
		case ok:
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			cfg.Logger.Warn("another instance kept the conversation's lease: the event is handled without it", "key", key)
			return false
		case <-t.C:
		}
		wait = min(2*wait, exclusiveRetry)
	}
}

// renew keeps the lease on key while the event is handled, for handlers slower than a third
// of the lease: a timer renews it then, and again every third; the returned func stops it.
func (cfg ExclusiveConfig) renew(ctx context.Context, key string) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	var tick func()
	tick = func() {
		if ok, err := cfg.Leases.AcquireLease(ctx, key, cfg.Owner, cfg.now(), cfg.TTL); err != nil || !ok {
			cfg.Logger.Warn("conversation lease not renewed", "key", key, "err", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(cfg.TTL / 3)
		}
	}
	mu.Lock()
	t = time.AfterFunc(cfg.TTL/3, tick)
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
