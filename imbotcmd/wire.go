package imbotcmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/internal/netguard"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/postgres"
	"github.com/imbot-dev/imbot/store/sqlite"
	"github.com/imbot-dev/imbot/web"
)

// Bounds of the metrics and health server (http.listen): a scraper or a probe needs a few
// connections and seconds, and nothing else should hold more. http.max_connections and
// http.idle_timeout override two of them.
const (
	httpMaxConnections    = 64
	httpIdleTimeout       = 2 * time.Minute // a keep-alive connection between requests
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second // a whole request
	httpWriteTimeout      = 30 * time.Second // a response, from the end of the request's headers
)

// app is a bot assembled from a config file, with what must be closed after it.
type app struct {
	bot     *bot.Bot
	store   Store
	metrics *handlers.Metrics
	rooms   *handlers.Rooms
	handoff *handlers.Handoff
	leader  *handlers.Leader // with other instances: who leads the helpdesk (cluster)
	lost    chan string      // the holder that took the lead from this instance
	http    *http.Server
	httpLn  net.Listener
	web     *http.Server // the chat widget for websites (web section)
	webLn   net.Listener
	closers []io.Closer
}

// openStore opens the configured store; log receives what the store reports.
func openStore(ctx context.Context, fc *fileConfig, log *slog.Logger) (Store, io.Closer, error) {
	switch fc.Store.Driver {
	case "memory":
		return &store.Memory{}, closerFunc(func() error { return nil }), nil
	case "postgres":
		dsn, err := fc.postgresDSN()
		if err != nil {
			return nil, nil, err
		}
		db, err := postgres.OpenWith(ctx, dsn, postgres.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		return db, db, nil
	}
	path := fc.Store.Path
	if path == "" {
		path = "imbot.db"
	}
	db, err := sqlite.OpenWith(ctx, path, sqlite.Options{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return db, db, nil
}

// assemble builds the bot and its chain from the config: logging, metrics, access control,
// rate limit, transcript, rooms, handoff, then the handler h.
func assemble(ctx context.Context, fc *fileConfig, log *slog.Logger, h func(*app) (bot.Handler, []bot.Middleware, error)) (*app, error) {
	a := &app{}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	st, closer, err := openStore(ctx, fc, log)
	if err != nil {
		return nil, err
	}
	a.store = st
	a.closers = append(a.closers, closer)

	cfg, err := fc.botConfig()
	if err != nil {
		return nil, err
	}
	cfg.Logger = log
	reg := prometheus.NewRegistry()
	if a.metrics, err = handlers.NewMetrics(reg); err != nil {
		return nil, err
	}
	if db, ok := st.(*sqlite.DB); ok {
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "imbot", Name: "store_file_restores_total",
			Help: "Times the SQLite database file was deleted or renamed while open and restored from the open database."},
			func() float64 { return float64(db.Restored()) })); err != nil {
			return nil, err
		}
	}
	cfg.Observer = a.metrics
	cfg.Health = func(context.Context) error { return a.ready() } // OPTIONS probes see what /readyz sees
	var acl *handlers.AccessList
	if len(fc.Access.Allow) > 0 || len(fc.Access.Deny) > 0 {
		allow := fc.Access.Allow
		if len(allow) > 0 {
			// Agents must always reach the bot, and so must web visitors when the web chat
			// is on (the token vouches for each).
			for _, ag := range fc.Handoff.Agents {
				allow = append(allow, ag.URI)
			}
			if fc.Web.Listen != "" {
				allow = append(allow, cmp.Or(fc.Web.Domain, web.DefaultGuestDomain))
			}
		}
		if acl, err = handlers.NewAccessList(allow, fc.Access.Deny); err != nil {
			return nil, fmt.Errorf("access: %w", err)
		}
		cfg.Admit = acl.Admit
	}
	if a.webLn, err = fc.listenWeb(&cfg, log); err != nil {
		return nil, err
	}
	if a.webLn != nil {
		a.closers = append(a.closers, a.webLn)
	}
	if a.bot, err = bot.New(cfg); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, closerFunc(func() error {
		select {
		case <-a.bot.Ready():
			return nil // Run closed the sockets
		default:
			return a.bot.Close()
		}
	}))
	if cfg.Registration.Registrar != "" {
		if err := a.metrics.TrackRegistration(a.bot); err != nil {
			return nil, err
		}
	}

	chain := []bot.Middleware{handlers.Logging(log), a.metrics.Middleware()}
	if fc.Store.Driver == "postgres" {
		// Instances that share the database take turns on each conversation (deploy/).
		ls, ok := a.store.(store.LeaseStore)
		if !ok {
			return nil, errors.New("store: the PostgreSQL store hands out no conversation leases")
		}
		ex, err := handlers.Exclusive(handlers.ExclusiveConfig{Leases: ls, Logger: log})
		if err != nil {
			return nil, err
		}
		chain = append([]bot.Middleware{ex}, chain...)
	}
	if acl != nil {
		chain = append(chain, acl.Middleware())
	}
	if len(fc.Handoff.Agents) > 0 {
		if err := a.helpdesk(ctx, fc, log); err != nil {
			return nil, err
		}
		if a.leader != nil {
			// First, before the conversation leases: what the leader handles, it leases.
			chain = append([]bot.Middleware{a.leader.Middleware()}, chain...)
		}
	}
	// A user's words in a handoff or a room are meant for people: each one a rate limit
	// refuses is answered.
	var relayed func(string) bool
	if a.handoff != nil {
		relayed = func(key string) bool { return a.handoff.Relaying(key) || a.rooms.Relaying(key) }
	}
	if fc.RateLimit.Every > 0 {
		rl := handlers.RateLimitConfig{Every: fc.RateLimit.Every, Burst: max(fc.RateLimit.Burst, 1), Reply: fc.RateLimit.Reply, Relayed: relayed}
		if a.handoff != nil {
			rl.Exempt = a.handoff.IsAgent // agents' words are relayed to users: never throttled
		}
		chain = append(chain, handlers.RateLimitWith(rl))
	}
	if vl := fc.visitorLimit(cmp.Or(fc.RateLimit.Reply, defaultSlowDown), relayed); vl != nil {
		chain = append(chain, vl)
	}
	chain = append(chain, handlers.Transcript(a.store))
	if a.rooms != nil {
		chain = append(chain, a.rooms.Middleware())
	}
	if a.handoff != nil {
		chain = append(chain, a.handoff.Middleware())
	}
	chain = append(chain, handlers.LogUnmatched(a.store))
	handler, more, err := h(a)
	if err != nil {
		return nil, err
	}
	a.bot.Use(append(chain, more...)...)
	a.bot.Handle(handler)

	if a.webLn != nil {
		guests, _ := cfg.Trust.Guests.(*web.Guests)
		if a.web, err = fc.webServer(a.bot, guests, log); err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
	}
	if fc.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", fc.HTTP.Listen)
		if err != nil {
			return nil, fmt.Errorf("http.listen: %w", err)
		}
		a.httpLn = netguard.NewListener(ln, cmp.Or(fc.HTTP.MaxConnections, httpMaxConnections), log)
		a.http = &http.Server{
			Handler:           a.metrics.Handler(a.ready),
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       cmp.Or(fc.HTTP.IdleTimeout, httpIdleTimeout),
		}
	}
	ok = true
	return a, nil
}

// helpdesk makes the rooms and the handoff. On one instance it restores what a previous
// process left open; with other instances (fc.clustered) the instance that takes the lead
// does (handlers.Leader), once the bot runs.
func (a *app) helpdesk(ctx context.Context, fc *fileConfig, log *slog.Logger) error {
	// Agents bring supervisors and colleagues into a handoff (/invite): a room each,
	// restored before the handoffs that use them.
	var err error
	a.rooms, err = handlers.NewRooms(handlers.RoomsConfig{
		Bot: a.bot, Store: a.store, Ready: a.bot.Ready(), Transcript: a.store, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("rooms: %w", err)
	}
	a.closers = append(a.closers, closerFunc(func() error { a.rooms.Close(); return nil }))
	hc := fc.handoffConfig()
	hc.Dialer, hc.Rooms = a.bot, a.rooms
	hc.Transcript, hc.Tickets, hc.Observer, hc.Logger = a.store, a.store, a.metrics, log
	// Handoffs in progress outlive a restart; what Restore sends waits for Run.
	hc.Store, hc.Ready = a.store, a.bot.Ready()
	hc.Delegate = func(ctx context.Context, ev *bot.Event, intent string) (bool, error) {
		if a.leader == nil {
			return false, nil // one instance: it runs the helpdesk
		}
		return a.leader.Delegate(ctx, ev, intent)
	}
	a.handoff, err = handlers.NewHandoff(hc)
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	a.closers = append(a.closers, closerFunc(func() error { a.handoff.Close(); return nil }))
	if !fc.clustered() {
		if err := a.rooms.Restore(ctx); err != nil {
			return fmt.Errorf("rooms: %w", err)
		}
		if err := a.handoff.Restore(ctx); err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
		return nil
	}
	addr, err := fc.clusterAddress()
	if err != nil {
		return fmt.Errorf("cluster.address: %w", err)
	}
	ls, ok := a.store.(handlers.LeaderStore)
	if !ok {
		return errors.New("store: this store cannot elect a helpdesk leader")
	}
	a.lost = make(chan string, 1)
	a.leader, err = handlers.NewLeader(handlers.LeaderConfig{
		Store: ls, Address: addr, Forwarder: a.bot, Handoff: a.handoff, Rooms: a.rooms,
		TTL: fc.Cluster.Lease, Logger: log,
		OnLost: func(holder string) {
			select {
			case a.lost <- holder:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// healthChecker is a store that can tell whether it can write (the SQLite store: its file
// deleted or replaced while open and not restored; the PostgreSQL store: its server answers).
type healthChecker interface {
	Healthy(ctx context.Context) error
}

// ready reports whether the bot serves: running, not shutting down, a store that can write,
// and registered when a registrar is set.
func (a *app) ready() error {
	select {
	case <-a.bot.Ready():
	default:
		return errors.New("starting")
	}
	if a.bot.Draining() {
		return errors.New("shutting down")
	}
	if hc, ok := a.store.(healthChecker); ok {
		if err := hc.Healthy(context.Background()); err != nil {
			return err
		}
	}
	st, _ := a.bot.Registration()
	switch st.State {
	case bot.RegOff, bot.RegRegistered:
		return nil
	}
	if st.Reason != "" {
		return fmt.Errorf("registration %s: %s", st.State, st.Reason)
	}
	return fmt.Errorf("registration %s", st.State)
}

// run serves until ctx ends, then closes everything.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{a.http, a.httpLn}, {a.web, a.webLn}} {
		if s.srv == nil {
			continue
		}
		go func() { _ = s.srv.Serve(s.ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.srv.Shutdown(sctx)
		}()
	}
	if a.leader == nil {
		return a.bot.Run(ctx)
	}
	// The instance that leads the helpdesk restores it, with the bot running; one that
	// lost the lead stops (its helpdesk is stale), to start again as a follower.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		if err := a.leader.Run(ctx); err != nil && ctx.Err() == nil {
			stop(err)
		}
	}()
	go func() {
		select {
		case holder := <-a.lost:
			stop(fmt.Errorf("cluster: %s took the helpdesk lead from this instance, which could not renew it in time: restart it", holder))
		case <-ctx.Done():
		}
	}()
	err := a.bot.Run(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i].Close()
	}
	a.closers = nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// handoffTexts are the texts of the config file as the handoff takes them; the texts it has
// beyond those keep their defaults.
func (t handoffTexts) handoffTexts() handlers.HandoffTexts {
	return handlers.HandoffTexts{
		Searching: t.Searching, StillWaiting: t.StillWaiting, Connected: t.Connected, FromAgent: t.FromAgent,
		Ended: t.Ended, NoAgent: t.NoAgent, NoAgentLater: t.NoAgentLater, Offer: t.Offer,
		AgentConnected: t.AgentConnected, FromUser: t.FromUser, AgentEnded: t.AgentEnded,
		Withdrawn: t.Withdrawn, Reoffered: t.Reoffered, Taken: t.Taken, UserLeft: t.UserLeft, AgentHelp: t.AgentHelp,
		FromGuest: t.FromGuest, Resumed: t.Resumed, WaitResumed: t.WaitResumed, AgentResumed: t.AgentResumed,
		OfferResumed: t.OfferResumed, Held: t.Held,
	}
}
