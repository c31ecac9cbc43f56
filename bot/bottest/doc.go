// Package bottest is imbot's test kit, in the spirit of net/http/httptest:
// a handler unit-tested with no SIP at all, and an in-process SIP
// instant-messaging peer for tests of a whole bot.
//
// # Handlers without SIP
//
// [NewEvent] builds a [*bot.Event] in a [Conversation], a [bot.Conversation]
// whose ID, key, mode, peer, start and turns a test sets with options
// ([WithPeer], [WithMode], ...) and which records what is sent with Send.
// Its peer is not Verified unless [Verified] is among the options: test
// what a handler grants a verified peer, and that it refuses the same to an
// unverified one claiming the same address.
// [NewRecorder] returns a [Recorder], a [bot.Responder] that records the
// replies (with their options), Typing calls and End, and can be made to
// fail:
//
//	ev := bottest.NewEvent(bot.EventMessage, "help", bottest.WithPeer("sip:alice@example.com"))
//	w := bottest.NewRecorder()
//	if err := handlers.Help(topics)(next).Handle(ctx, w, ev); err != nil {
//		t.Fatal(err)
//	}
//	if got := w.Replies(); len(got) != 1 {
//		t.Errorf("replies %q, want the list of topics", got)
//	}
//
// # A SIP peer
//
// A [Peer] is a small SIP user agent built on sipgo. It listens on
// 127.0.0.1 on a port chosen at run time (never 5060), talks to the bot
// under test over real loopback sockets (UDP or TCP) and plays the part of
// a chat client:
//
//   - page mode (RFC 3428): [Peer.SendPage], [Peer.SendPageRaw] and
//     [Peer.SendPageTyping] send out-of-dialog MESSAGEs;
//   - session mode: [Peer.OpenSession] opens an INVITE dialog with an
//     "m=message ... sip" SDP in either dialect ([DialectMS] for
//     OCS/Lync/Skype for Business clients, [DialectIETF] for standard
//     clients), and the returned [Session] sends text, typing notices,
//     pipelined bursts and BYE;
//   - recording: every request the bot sends to the peer (replies, typing
//     notices, BYE, OPTIONS, ...) is answered (200 by default, see
//     [Options]) and kept as a timestamped [Record], in the order the
//     requests arrived on the wire. [Peer.Wait] and [Peer.WaitText] block
//     on a context until a matching record exists;
//   - sessions the bot opens: with [Options.AcceptSessions] the peer
//     answers the bot's INVITE and [Peer.WaitSession] returns the session;
//   - identity: with [Options.AssertIdentity] the peer's requests carry the
//     P-Asserted-Identity a trusted proxy adds, so that a bot trusting
//     127.0.0.1 (bot.TrustConfig.Proxies) takes it as verified, and
//     [Options.From] makes it claim someone else's address, to test that the
//     bot grants such a sender nothing.
//
// Nothing in the kit sleeps: waits end on events or on the caller's
// context, and everything is safe for concurrent use.
//
// A typical test:
//
//	func TestEcho(t *testing.T) {
//		b := startBot(t) // the bot under test, listening on 127.0.0.1
//		p := bottest.NewPeer(t, bottest.Options{Bot: b.Addr(), Transport: "tcp"})
//		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
//		defer cancel()
//
//		s, err := p.OpenSession(ctx, bottest.DialectMS)
//		if err != nil {
//			t.Fatal(err)
//		}
//		if _, err := s.Send(ctx, "hello"); err != nil {
//			t.Fatal(err)
//		}
//		if _, err := p.WaitText(ctx, "echo: hello"); err != nil {
//			t.Fatal(err) // the error lists everything the bot did send
//		}
//		typing, _ := p.Wait(ctx, bottest.IsTyping(true))
//		reply, _ := p.WaitText(ctx, "echo: hello")
//		if typing.Time.After(reply.Time) {
//			t.Error("typing arrived after the reply")
//		}
//	}
//
// The peer sends every request straight to [Options.Bot], like an outbound
// proxy would: the Request-URI of in-dialog requests is still the bot's
// Contact, so a test can check it, but the bot's Contact does not need to
// be reachable.
package bottest
