// Package handlers is imbot's kit of reusable middleware and handlers, one file each, in the
// manner of chi's middleware package: logging, Prometheus metrics with health endpoints, rate
// limiting per sender, access control, transcripts, unmatched-question logging, generated
// help, satisfaction ratings and human handoff.
//
// Everything here is a plain bot.Middleware (func(bot.Handler) bot.Handler) or bot.Handler,
// so it composes with the rules engine and with any Go handler. A helpdesk chain reads from
// the outside in:
//
//	db, _ := sqlite.Open(ctx, "imbot.db")
//	m, _ := handlers.NewMetrics(reg)
//	acl, _ := handlers.NewAccessList(allow, deny)
//	ho, _ := handlers.NewHandoff(handlers.HandoffConfig{
//		Agents:  []handlers.Agent{{URI: "sip:bob@example.com", Name: "Bob"}},
//		Dialer:  b, // *bot.Bot
//		Tickets: db, Transcript: db, Observer: m,
//	})
//	b.Use(
//		handlers.Logging(logger),          // one line per event
//		m.Middleware(),                    // counters and latency
//		acl.Middleware(),                  // backstop; bot.Config.Admit = acl.Admit refuses with 403
//		handlers.RateLimit(6*time.Second, 5, "You are writing faster than I can read."),
//		handlers.Transcript(db),           // every message in and out
//		ho.Middleware(),                   // keeps the bot quiet while an agent talks
//		handlers.Help(topics),             // "help" and "?"
//		handlers.LogUnmatched(db),         // what no rule answered
//		engine.Middleware(),               // the rules
//	)
//
// # Who answered
//
// Logging, Metrics, Transcript, LogUnmatched and Handoff need to know which rule or handler
// answered an event, and whether nothing matched. Whoever answers says so on the Responder
// it was given, with bot.SetAnswerer(w, name) or bot.SetNoMatch(w) (the rules engine does it
// for its rules); the middleware of this package read it from the Responder once the rest of
// the chain has returned (bot.AnswerersOf, bot.NoMatchOf, Unanswered). A middleware that
// wraps the Responder gives its wrapper an Unwrap() bot.Responder method so that the record
// reaches the Responder underneath.
//
// # Verified senders
//
// A peer's address is only what its From header claims unless the bot verified it
// (bot.Peer.Verified; see bot.TrustConfig). What the handlers grant goes to verified
// senders only: the access list's allow entries admit verified peers (deny entries apply to
// everyone), handoff agents must be verified to act, and the rate limit knows an unverified
// sender by where it writes from, not by the address it claims. Logging says whether each
// event's peer was verified.
//
// # Stores
//
// The handlers write records through small interfaces (TranscriptStore, TicketStore,
// UnmatchedStore, RatingStore) that store/sqlite's *DB and store.Memory satisfy; this
// package never imports a database driver.
package handlers
