// Package bot is imbot's runtime: a SIP instant-messaging endpoint that signs in to a
// registrar (or only listens), accepts IM sessions (an INVITE with an m=message SDP, then
// in-dialog MESSAGEs, as Lync and Office Communications Server do) and page-mode MESSAGEs
// (RFC 3428), and turns everything it receives into Events that go through one chain of
// handlers, in the manner of net/http:
//
//	b, err := bot.New(bot.Config{Listen: []string{"udp://127.0.0.1:5070"}})
//	if err != nil { ... }
//	b.Use(logging)                      // middleware: func(bot.Handler) bot.Handler
//	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
//		if ev.Kind == bot.EventMessage {
//			return w.Reply(ctx, "you said: "+ev.Text)
//		}
//		return nil
//	}))
//	err = b.Run(ctx)                    // serves until ctx ends, then shuts down gracefully
//
// An Event is a message, a session's start or end, the peer's typing or an idle timeout of
// one Conversation (an IM session or a page-mode conversation; Event.Session). The
// Responder replies in the peer's own dialect and mode, shows typing ("is composing",
// RFC 3994 or the Microsoft KeyboardActivity dialect) and ends the conversation. Events of
// one conversation are handled one at a time, in the order they arrived; conversations run in
// parallel on at most Config.MaxWorkers goroutines.
//
// The session layer keeps its promises on the wire: a message answered 200 is handled; past
// what the workers can take in time the bot answers 503 with Retry-After instead; in-dialog
// requests are taken in arrival order with RFC 3261's CSeq rule; the bot's own requests in a
// dialog leave with strictly increasing CSeq. Who a peer is comes from the trust model
// (Config.Trust: trusted proxies asserting identities, digest authentication, or unverified
// for development); Peer.Verified says which handlers may grant anything.
//
// Bot.Send and Bot.Open start conversations from the bot's side. Package bottest runs a
// handler with no SIP at all (NewEvent, NewRecorder) or drives a bot over real SIP on
// loopback with an in-process peer of either dialect.
package bot
