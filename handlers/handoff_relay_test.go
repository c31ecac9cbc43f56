package handlers

import (
	"testing"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestAgentAnswerer(t *testing.T) {
	for _, tc := range []struct {
		answerer string
		isAgent  bool
		name     string
	}{
		{AgentAnswerer("Ann"), true, "Ann"},
		{"agent:Ann", true, "Ann"},
		{AgentAnswerer(""), true, ""},
		{AgentAnswerer("Ann Lee: helpdesk"), true, "Ann Lee: helpdesk"},
		{"handoff", false, ""},
		{"agent", false, ""},
		{"rule:agent:Ann", false, ""},
		{"", false, ""},
	} {
		if got := IsAgentAnswerer(tc.answerer); got != tc.isAgent {
			t.Errorf("IsAgentAnswerer(%q) = %v, want %v", tc.answerer, got, tc.isAgent)
		}
		if got := AgentAnswererName(tc.answerer); got != tc.name {
			t.Errorf("AgentAnswererName(%q) = %q, want %q", tc.answerer, got, tc.name)
		}
	}
	// The format is what transcripts already hold: it must not change.
	if got := AgentAnswerer("Ann"); got != "agent:Ann" {
		t.Errorf(`AgentAnswerer("Ann") = %q, want "agent:Ann"`, got)
	}
}

func TestSink(t *testing.T) {
	var w bot.Responder = bottest.NewRecorder()
	ann, bob := &agentState{Agent: Agent{URI: "sip:ann@example.com"}}, &agentState{Agent: Agent{URI: "sip:bob@example.com"}}
	for _, tc := range []struct {
		name      string
		s         sink
		userKey   string
		isUser    bool
		agent     *agentState
		isAgentOf bool
	}{
		{"user", userSink("k1", w), "k1", true, ann, false},
		{"other user", userSink("k1", w), "k2", false, ann, false},
		{"agent", agentSink(ann, w), "", false, ann, true},
		{"other agent", agentSink(ann, w), "", false, bob, false},
		{"a user key that looks like an agent's", userSink("agent sip:ann@example.com", w), "agent sip:ann@example.com", true, ann, false},
		{"no conversation", sink{}, "", false, ann, false},
		{"no responder", userSink("k1", nil), "k1", false, ann, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.isUser(tc.userKey); got != tc.isUser {
				t.Errorf("isUser(%q) = %v, want %v", tc.userKey, got, tc.isUser)
			}
			if got := tc.s.isAgent(tc.agent); got != tc.isAgentOf {
				t.Errorf("isAgent(%s) = %v, want %v", tc.agent.URI, got, tc.isAgentOf)
			}
		})
	}
}
