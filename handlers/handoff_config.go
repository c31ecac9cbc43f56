package handlers

import (
	"log/slog"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// Agent is a person who can take conversations over from the bot.
type Agent struct {
	// URI is the agent's SIP address, such as "sip:bob@example.com" (required). The bot
	// sends to it, and recognises the agent's messages by it.
	URI string
	// Name is shown to users; default: the user part of URI.
	Name string
	// Max is how many conversations the agent holds at once; default 1.
	Max int
}

// HandoffConfig configures human handoff. Agents and Dialer are required; every other field
// has a useful zero value.
type HandoffConfig struct {
	// Agents are the people conversations are handed to, asked in this order.
	Agents []Agent
	// Dialer sends the messages the bot relays; pass the *bot.Bot.
	Dialer Dialer
	// AnswerTimeout is how long a user waits for an agent to accept; then the user is told
	// and a ticket is created. Default: 2 minutes.
	AnswerTimeout time.Duration
	// OfferTimeout is how long an agent has to accept an offer before it moves on to another
	// free agent that has not passed: first to those who have not had it yet, in the order of
	// Agents, then back round to the one it left longest ago. The agent it leaves is told
	// (HandoffTexts.Reoffered). When no other agent is free, the offer stays where it is and
	// moves on once one is. AnswerTimeout still ends the whole handoff. Default (0): 30
	// seconds; negative: an offer stays with its agent until AnswerTimeout. Not used with
	// Broadcast, where every free agent has the offer already.
	OfferTimeout time.Duration
	// Broadcast offers each handoff to every free agent at once (and to agents that become
	// free while it waits) instead of to one at a time: the first to accept takes it, and the
	// others are told who did (HandoffTexts.Taken), also when they try to accept it later.
	Broadcast bool
	// Triggers are phrases that start a handoff when a user's message contains them as whole
	// words, in any case. nil means "agent" and "human"; an empty, non-nil slice means none
	// (handoffs then start from a rule, through Handler, or after repeated no-match).
	Triggers []string
	// NoMatchLimit starts a handoff after this many messages in a row that nothing matched
	// (see NoMatch; with the rules engine, messages only a fallback answered outside a
	// flow). 0 turns it off.
	NoMatchLimit int
	// DoneCommand is what an agent writes to end a conversation; default "/done". Agents
	// also have /accept, /pass and /list (see Handoff).
	DoneCommand string
	// Transcript, when set, shows the agent the last TranscriptLines messages of the user's
	// conversation, and records the agent's relayed messages in it.
	Transcript TranscriptStore
	// TranscriptLines bounds the transcript shown to the agent; default 20.
	TranscriptLines int
	// Tickets, when set, receives a ticket for every user no agent answered.
	Tickets TicketStore
	// Observer, when set, counts handoffs (pass the *Metrics).
	Observer HandoffObserver
	// Texts are what the bot says; empty fields keep the defaults (DefaultHandoffTexts).
	Texts HandoffTexts
	// UnverifiedAgent is the answer to an unverified sender claiming an agent's address
	// (see Handoff), with the placeholder {agent}; default DefaultUnverifiedAgentText.
	UnverifiedAgent string
	// Logger receives a line per handoff step; default slog.Default().
	Logger *slog.Logger
	// Store, when set, keeps every handoff in progress, written on each step (requested,
	// offered, accepted, passed, ended), so that a restarted bot resumes them: call Restore
	// before the bot serves. nil keeps handoffs in memory only: a restart ends them.
	Store store.HandoffStore
	// Ready, when set, holds back what Restore and the restored deadlines send until it is
	// closed: pass the bot's Ready() when Restore runs before the bot's Run.
	Ready <-chan struct{}
}

// DefaultUnverifiedAgentText is the default HandoffConfig.UnverifiedAgent.
const DefaultUnverifiedAgentText = "I cannot verify that you are {agent}: agents must write through the trusted proxy or sign in."

// DefaultOfferTimeout is the default HandoffConfig.OfferTimeout.
const DefaultOfferTimeout = 30 * time.Second
