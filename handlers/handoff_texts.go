package handlers

import (
	"strconv"
	"strings"
)

// HandoffTexts are the messages of a handoff. They may use the placeholders {user} (the
// user's name), {uri} (the user's address, followed by ", not verified" when the user is not
// Verified), {agent} (the agent's name), {id} (the conversation's number for the agent),
// {text} (a relayed message), {ticket} (a ticket number), {transcript} (the conversation so
// far) and {done} (the DoneCommand).
type HandoffTexts struct {
	// To the user.
	Searching    string // the handoff starts
	StillWaiting string // the user asks again while waiting
	Connected    string // an agent accepted
	FromAgent    string // a message of the agent, relayed
	Ended        string // the agent ended the conversation
	NoAgent      string // nobody answered; a ticket was created
	NoAgentLater string // nobody answered; no ticket store
	// To the agent.
	Offer          string // a user is waiting
	AgentConnected string // the agent accepted
	FromUser       string // a message of the user, relayed
	AgentEnded     string // the conversation ended
	Withdrawn      string // the offer is no longer open (timeout)
	Reoffered      string // the agent did not accept in time: the offer went to another agent
	Taken          string // another agent, {agent}, accepted the offer first
	UserLeft       string // the user ended the session
	AgentHelp      string // an unknown command
	FromGuest      string // a line of {guest}, someone the agent invited (HandoffConfig.Rooms)
	// After a restart (HandoffConfig.Store), once per restored handoff.
	Resumed      string // to the user: the conversation with the agent continues
	WaitResumed  string // to the user: still looking for an agent
	AgentResumed string // to the agent: the conversation continues
	OfferResumed string // to the agent: the offer is still open
	// To the agent: a restored handoff's user is not verified, and the bot can write to it
	// only once it writes again; the agent's message {text} is held until then.
	Held string
}

// DefaultHandoffTexts are the English texts used for empty HandoffTexts fields.
var DefaultHandoffTexts = HandoffTexts{
	Searching:    "Let me find a person to help you. Please wait a moment.",
	StillWaiting: "I am still looking for someone to help you. Please wait.",
	Connected:    "{agent} is now with you.",
	FromAgent:    "{agent}: {text}",
	Ended:        "{agent} has left the conversation. You are talking with the bot again.",
	NoAgent:      "Sorry, nobody is available right now. I opened ticket #{ticket} for you; the helpdesk will get back to you.",
	NoAgentLater: "Sorry, nobody is available right now. Please try again later.",

	Offer: "#{id} {user} ({uri}) is waiting for help. Reply to take the conversation " +
		"(/accept {id}), or /pass {id} to leave it to someone else.{transcript}",
	AgentConnected: "You are now talking with {user} (#{id}). What you write goes to them; {done} ends the conversation.",
	FromUser:       "#{id} {user}: {text}",
	AgentEnded:     "Conversation #{id} with {user} ended.",
	Withdrawn:      "#{id} {user} is no longer waiting.",
	Reoffered:      "#{id} {user} waited too long for an answer and was offered to someone else.",
	Taken:          "#{id} {user} was taken by {agent}.",
	UserLeft:       "#{id} {user} left the conversation.",
	AgentHelp: "Commands: /accept [n], /pass [n], {done} [n], /list, /invite [#n] sip:address. " +
		"Plain text goes to your current conversation; '#n text' goes to conversation n.",
	FromGuest: "#{id} {guest}: {text}",

	Resumed:      "(The helpdesk restarted; your conversation #{id} with {agent} continues.)",
	WaitResumed:  "(The helpdesk restarted; I am still looking for someone to help you.)",
	AgentResumed: "(The helpdesk restarted; your conversation #{id} with {user} continues.)",
	OfferResumed: "(The helpdesk restarted; #{id} {user} ({uri}) is still waiting: /accept {id} or /pass {id}.)",
	Held: "(#{id} {user} is not verified: the bot can write to them only once they write again. " +
		"Your message waits until then.)",
}

func (t *HandoffTexts) fill(d HandoffTexts) {
	for _, f := range []struct {
		dst *string
		def string
	}{
		{&t.Searching, d.Searching}, {&t.StillWaiting, d.StillWaiting}, {&t.Connected, d.Connected},
		{&t.FromAgent, d.FromAgent}, {&t.Ended, d.Ended}, {&t.NoAgent, d.NoAgent}, {&t.NoAgentLater, d.NoAgentLater},
		{&t.Offer, d.Offer}, {&t.AgentConnected, d.AgentConnected}, {&t.FromUser, d.FromUser},
		{&t.AgentEnded, d.AgentEnded}, {&t.Withdrawn, d.Withdrawn}, {&t.Reoffered, d.Reoffered}, {&t.Taken, d.Taken},
		{&t.UserLeft, d.UserLeft}, {&t.AgentHelp, d.AgentHelp}, {&t.FromGuest, d.FromGuest},
		{&t.Resumed, d.Resumed}, {&t.WaitResumed, d.WaitResumed}, {&t.AgentResumed, d.AgentResumed},
		{&t.OfferResumed, d.OfferResumed}, {&t.Held, d.Held},
	} {
		if *f.dst == "" {
			*f.dst = f.def
		}
	}
}

func (h *Handoff) fill(text string, ho *handoff, agent string, extra ...string) string {
	uri := ho.userURI
	if !ho.verified && uri != "" {
		uri += ", not verified"
	}
	r := []string{"{user}", ho.name, "{uri}", uri, "{agent}", agent, "{id}", strconv.Itoa(ho.id), "{done}", h.cfg.DoneCommand}
	return strings.NewReplacer(append(r, extra...)...).Replace(text)
}
