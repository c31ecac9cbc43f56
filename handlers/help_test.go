package handlers

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestHelp(t *testing.T) {
	topics := []HelpTopic{
		{Name: "reset", Description: "Reset a forgotten password", Examples: []string{"I forgot my password", "reset"}},
		{Name: "status", Description: "Check the status of a ticket"},
		{Name: "secret", Description: "Internal", Hidden: true},
		{Name: "nodesc"},
	}
	const list = "I can help with:\n" +
		"- Reset a forgotten password (for example: \"I forgot my password\")\n" +
		"- Check the status of a ticket"
	tests := []struct {
		name   string
		text   string
		topics []HelpTopic
		want   []string
	}{
		{"help", "help", topics, []string{list}},
		{"question mark", "?", topics, []string{list}},
		{"slash help, spaces and case", "  /HELP ", topics, []string{list}},
		{"not help", "helpdesk", topics, []string{"echo: helpdesk"}},
		{"no topics", "help", nil, []string{"I have no topics to list yet. Just tell me what you need."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Help(func() []HelpTopic { return tt.topics })(echo)
			w := bottest.NewRecorder()
			if err := h.Handle(context.Background(), w, msg(tt.text)); err != nil {
				t.Fatal(err)
			}
			if got := w.Replies(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("replies = %q, want %q", got, tt.want)
			}
			if names := strings.Join(w.Answerers(), ","); tt.want[0] == list && names != "help" {
				t.Errorf("answerer = %q, want help", names)
			}
		})
	}
}

func TestHelpNilTopics(t *testing.T) {
	w := bottest.NewRecorder()
	if err := Help(nil)(echo).Handle(context.Background(), w, msg("help")); err != nil || w.Replied() != 1 {
		t.Errorf("Help(nil): %v, %q", err, w.Replies())
	}
}
