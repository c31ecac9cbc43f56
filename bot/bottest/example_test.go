package bottest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// A conversation with a bot in the Microsoft dialect. In a test, use
// bottest.NewPeer(t, opts), which fails the test on error and closes the
// peer at cleanup.
func ExamplePeer() {
	bot, err := startResponder("udp") // stands in for the bot under test
	if err != nil {
		panic(err)
	}
	defer bot.Close()

	p, err := bottest.Start(bottest.Options{Bot: bot.addr, DisplayName: "Alice"})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		panic(err)
	}
	if _, err := s.Send(ctx, "hello"); err != nil {
		panic(err)
	}
	reply, err := s.WaitText(ctx, "echo: hello")
	if err != nil {
		panic(err) // the error lists what the bot did send
	}
	typing, err := s.Wait(ctx, bottest.IsTyping(true))
	if err != nil {
		panic(err)
	}
	fmt.Println(reply.Method, reply.Text, reply.Status)
	fmt.Println(typing.Method, typing.Dialect, "before the reply:", typing.Time.Before(reply.Time))
	if err := s.Bye(ctx); err != nil {
		panic(err)
	}
	// Output:
	// MESSAGE echo: hello 200
	// INFO ms before the reply: true
}

// A handler unit-tested with no SIP at all, as net/http handlers are with httptest: NewEvent
// builds the event and its conversation, NewRecorder stands in for the Responder.
func ExampleNewRecorder() {
	greet := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		switch {
		case ev.Kind != bot.EventMessage:
			return nil
		case ev.Session.Turns() == 1:
			return w.Reply(ctx, "Hi "+ev.Session.Peer().Name()+"!", bot.WithTyping(time.Second))
		case ev.Text == "bye":
			w.End()
			return w.Reply(ctx, "Bye!")
		}
		return w.Reply(ctx, "You said: "+ev.Text)
	})

	ev := bottest.NewEvent(bot.EventMessage, "hello", bottest.WithPeer(`"Alice" <sip:alice@example.com>`))
	w := bottest.NewRecorder()
	if err := greet.Handle(context.Background(), w, ev); err != nil {
		panic(err)
	}
	fmt.Println(w.Replies(), w.Messages()[0].Typing, w.Ended())

	// The next message of the same conversation is its second turn.
	conv := ev.Session.(*bottest.Conversation)
	w = bottest.NewRecorder()
	if err := greet.Handle(context.Background(), w, conv.Event(bot.EventMessage, "bye")); err != nil {
		panic(err)
	}
	fmt.Println(w.Replies(), w.Ended())
	// Output:
	// [Hi Alice!] 1s false
	// [Bye!] true
}
