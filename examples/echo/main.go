// Command echo is the smallest imbot: it answers every message with the same text.
//
//	go run ./examples/echo -listen 127.0.0.1:5070
//
// Then send it a SIP MESSAGE, or open an IM session, to sip:echo@127.0.0.1:5070.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/imbot-dev/imbot/bot"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5070", "address to listen on (UDP and TCP)")
	flag.Parse()

	b, err := bot.New(bot.Config{
		Listen:   []string{"udp://" + *listen, "tcp://" + *listen},
		Identity: "sip:echo@" + *listen,
	})
	if err != nil {
		log.Fatal(err)
	}
	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		return w.Reply(ctx, ev.Text)
	}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := b.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
