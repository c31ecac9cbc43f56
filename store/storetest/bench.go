package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// Benchmark measures what the store costs a message, as sub-benchmarks of b: "save+load"
// is the rules engine's Load of a conversation state and its Save of the next one,
// "transcript" one AppendTranscript. s should be empty; conversations go round 100 keys.
func Benchmark(b *testing.B, s Store) {
	ctx := context.Background()
	b.Run("save+load", func(b *testing.B) {
		i := 0
		for b.Loop() {
			key := fmt.Sprintf("sip:bot@x sip:user%d@x", i%100)
			c, err := s.Load(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := c.Vars["n"].(int)
			next := store.ConversationState{State: "ask-username", Vars: map[string]any{"n": n + 1, "summary": "VPN down", "urgency": "high"}}
			if err := s.Save(ctx, key, next); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("transcript", func(b *testing.B) {
		i := 0
		for b.Loop() {
			e := store.TranscriptEntry{SessionID: "s", Key: fmt.Sprintf("sip:bot@x sip:user%d@x", i%100), Direction: store.In,
				Peer: "sip:user@x", Text: "I forgot my password", Time: time.Now(), Answerer: "reset-password"}
			if err := s.AppendTranscript(ctx, e); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
