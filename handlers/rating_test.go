package handlers

import (
	"context"
	"reflect"
	"testing"

	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
)

func TestRating(t *testing.T) {
	tests := []struct {
		text    string
		score   int // 0: nothing stored
		comment string
		reply   string
	}{
		{"5", 5, "", "Thanks!"},
		{"4 - quick and friendly", 4, "quick and friendly", "Thanks!"},
		{"I'd say 3, slow", 3, "I'd say , slow", "Thanks!"},
		{"0", 0, "", "Please answer with a number from 1 to 5."},
		{"9", 0, "", "Please answer with a number from 1 to 5."},
		{"great", 0, "", "Please answer with a number from 1 to 5."},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			mem := &store.Memory{}
			w := bottest.NewRecorder()
			if err := Rating(mem, 0, "Thanks!").Handle(context.Background(), w, fromPeer("sip:alice@x", msg(tt.text))); err != nil {
				t.Fatal(err)
			}
			if got := w.Replies(); !reflect.DeepEqual(got, []string{tt.reply}) {
				t.Errorf("replies = %q, want %q", got, tt.reply)
			}
			rs, _ := mem.Ratings(context.Background(), 0)
			if tt.score == 0 {
				if len(rs) != 0 {
					t.Errorf("stored %+v", rs)
				}
				return
			}
			if len(rs) != 1 || rs[0].Score != tt.score || rs[0].Comment != tt.comment || rs[0].Peer != "sip:alice@x" || rs[0].Key == "" {
				t.Errorf("stored %+v, want score %d comment %q", rs, tt.score, tt.comment)
			}
		})
	}
}

func TestRatingScale(t *testing.T) {
	mem := &store.Memory{}
	w := bottest.NewRecorder()
	_ = Rating(mem, 10, "").Handle(context.Background(), w, fromPeer("sip:a@x", msg("9")))
	if rs, _ := mem.Ratings(context.Background(), 0); len(rs) != 1 || rs[0].Score != 9 || w.Replied() != 0 {
		t.Errorf("ratings %+v, replies %q", rs, w.Replies())
	}
}
