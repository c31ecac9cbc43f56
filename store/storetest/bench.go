package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// Benchmark measures what the store costs a message, as sub-benchmarks of b:
//
//   - save+load: the rules engine's Load of a conversation state and its Save of the next;
//   - transcript: one AppendTranscript;
//   - message: what one message of a conversation costs, a Load and a Save and two
//     transcript entries (what the user wrote, what the bot answered);
//   - message-parallel: the same from GOMAXPROCS goroutines at once, each its own
//     conversations, as a busy bot handles them (ns/op is then per message of all).
//
// s should be empty; the conversations go round 100 keys per goroutine.
func Benchmark(b *testing.B, s Store) {
	ctx := context.Background()
	b.Run("save+load", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := saveLoad(ctx, s, conversationKey(0, i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("transcript", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := appendEntry(ctx, s, conversationKey(0, i), store.In); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("message", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := message(ctx, s, conversationKey(0, i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("message-parallel", func(b *testing.B) {
		var workers atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			w := int(workers.Add(1))
			for i := 0; pb.Next(); i++ {
				if err := message(ctx, s, conversationKey(w, i)); err != nil {
					b.Error(err) // not Fatal: this is not the benchmark's goroutine
					return
				}
			}
		})
	})
}

func conversationKey(worker, i int) string {
	return fmt.Sprintf("sip:bot@x sip:user%d-%d@x", worker, i%100)
}

func saveLoad(ctx context.Context, s Store, key string) error {
	c, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	n, _ := c.Vars["n"].(int)
	return s.Save(ctx, key, store.ConversationState{State: "ask-username", Vars: map[string]any{"n": n + 1, "summary": "VPN down", "urgency": "high"}})
}

func appendEntry(ctx context.Context, s Store, key string, dir store.Direction) error {
	return s.AppendTranscript(ctx, store.TranscriptEntry{SessionID: "s", Key: key, Direction: dir, Peer: "sip:user@x",
		Text: "I forgot my password", Time: time.Now(), Answerer: "reset-password"})
}

// message is what the store does for one message of a conversation.
func message(ctx context.Context, s Store, key string) error {
	if err := appendEntry(ctx, s, key, store.In); err != nil {
		return err
	}
	if err := saveLoad(ctx, s, key); err != nil {
		return err
	}
	return appendEntry(ctx, s, key, store.Out)
}
