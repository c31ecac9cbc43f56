package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/imbot-dev/imbot/bot"
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
	// words, in any case. nil means DefaultHandoffTriggers ("agent" and "human"); an empty,
	// non-nil slice means none
	// (handoffs then start from a rule, through Handler, or after repeated no-match).
	Triggers []string
	// NoMatchLimit starts a handoff after this many messages in a row that nothing matched
	// (see NoMatch; with the rules engine, messages only a fallback answered outside a
	// flow). 0 turns it off.
	NoMatchLimit int
	// DoneCommand is what an agent writes to end a conversation; default "/done". Agents
	// also have /accept, /pass, /list and /invite (see Handoff).
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
	// Rooms, when set, makes every accepted handoff a room (HandoffRoomID) of the user, the
	// agent and the silent bot, into which the agent brings a supervisor or a colleague with
	// /invite sip:...: the guest sees the conversation from then on, and its lines reach
	// both. The lines between the user and the agent go through the room too, and the
	// room records them in the transcripts (RoomsConfig.Transcript, not Transcript). Put the
	// Rooms' Middleware before the Handoff's, and with a Store, restore the Rooms before the
	// Handoff. nil: /invite is not available.
	Rooms *Rooms
	// Delegate, when set, is asked first whenever a handoff would start (a trigger, the
	// NoMatchLimit, Handler), with the intent "handoff": when it reports true, another
	// instance starts it and this one does nothing more. Instances that share a store set it
	// to their Leader's Delegate.
	Delegate func(ctx context.Context, ev *bot.Event, intent string) (bool, error)
}

// DefaultUnverifiedAgentText is the default HandoffConfig.UnverifiedAgent.
const DefaultUnverifiedAgentText = "I cannot verify that you are {agent}: agents must write through the trusted proxy or sign in."

// DefaultOfferTimeout is the default HandoffConfig.OfferTimeout.
const DefaultOfferTimeout = 30 * time.Second

// Defaults of HandoffConfig fields left zero.
const (
	DefaultAnswerTimeout   = 2 * time.Minute
	DefaultDoneCommand     = "/done"
	DefaultTranscriptLines = 20
)

// DefaultHandoffTriggers returns the triggers of a HandoffConfig whose Triggers are nil.
func DefaultHandoffTriggers() []string { return []string{"agent", "human"} }

// withDefaults returns c with the defaults in place of the zero values (Agents' own
// defaults are set by NewHandoff).
func (c HandoffConfig) withDefaults() HandoffConfig {
	if c.AnswerTimeout <= 0 {
		c.AnswerTimeout = DefaultAnswerTimeout
	}
	if c.OfferTimeout == 0 {
		c.OfferTimeout = DefaultOfferTimeout
	}
	if c.Triggers == nil {
		c.Triggers = DefaultHandoffTriggers()
	}
	if c.DoneCommand == "" {
		c.DoneCommand = DefaultDoneCommand
	}
	if c.TranscriptLines <= 0 {
		c.TranscriptLines = DefaultTranscriptLines
	}
	if c.UnverifiedAgent == "" {
		c.UnverifiedAgent = DefaultUnverifiedAgentText
	}
	return c
}

// Validate reports what is wrong with the settings of c, each as a *FieldError (joined with
// errors.Join): no agents, an agent that is not valid (Agent.Validate), an agent listed
// twice. It leaves out Dialer and the stores, which are the program's parts, not settings:
// NewHandoff checks those too.
func (c HandoffConfig) Validate() error {
	if len(c.Agents) == 0 {
		return &FieldError{Field: "Agents", Err: errors.New("at least one agent is needed")}
	}
	var errs []error
	seen := map[sipAddr]bool{}
	for i, a := range c.Agents {
		if err := a.Validate(); err != nil {
			errs = append(errs, &FieldError{Field: "Agents", Err: fmt.Errorf("agent %d: %w", i+1, err)})
			continue
		}
		addr, _ := parseAddr(a.URI)
		if seen[addr] {
			errs = append(errs, &FieldError{Field: "Agents", Err: fmt.Errorf("agent %d: %q is listed twice", i+1, a.URI)})
		}
		seen[addr] = true
	}
	return errors.Join(errs...)
}

// Validate reports whether a is a usable agent: URI must be a sip: or sips: address with a
// user part, such as sip:bob@example.com.
func (a Agent) Validate() error {
	scheme, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(a.URI)), ":")
	addr, err := parseAddr(a.URI)
	if err != nil || addr.user == "" || (scheme != "sip" && scheme != "sips") {
		return &FieldError{Field: "URI", Err: fmt.Errorf("%q is not a SIP address such as sip:bob@example.com", a.URI)}
	}
	return nil
}

// Offer modes, as a configuration file names them; ParseOfferMode reads them.
const (
	OfferModeOne = "one" // an offer goes to one free agent at a time
	OfferModeAll = "all" // an offer goes to every free agent at once (HandoffConfig.Broadcast)
)

// ParseOfferMode returns HandoffConfig.Broadcast for an offer mode: OfferModeOne or ""
// (the default) is false, OfferModeAll true; any other is an error.
func ParseOfferMode(mode string) (broadcast bool, err error) {
	switch mode {
	case "", OfferModeOne:
		return false, nil
	case OfferModeAll:
		return true, nil
	}
	return false, fmt.Errorf("%q: want %s (to one agent at a time) or %s (to every free agent at once)", mode, OfferModeOne, OfferModeAll)
}
