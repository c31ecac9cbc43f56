package bot

import (
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// EventKind says what happened in a conversation.
type EventKind int

// The kinds of event that go through the chain.
const (
	// EventMessage is a text message from the peer.
	EventMessage EventKind = iota + 1
	// EventSessionStart opens a conversation: an IM session was accepted, or a page-mode
	// peer wrote for the first time (or for the first time after an idle timeout).
	EventSessionStart
	// EventSessionEnd closes a conversation. Replies are no longer possible; Event.Reason
	// says why it ended.
	EventSessionEnd
	// EventTyping reports that the peer started or stopped typing (Event.Typing).
	EventTyping
	// EventIdle says the conversation saw nothing for the idle timeout. Handlers may still
	// reply (a farewell); the session ends right after, with EventSessionEnd.
	EventIdle
	// EventJoin says a participant joined a room the bot hosts (Event.Room names it; see
	// handlers.Rooms). Session is the participant's conversation: the live one when the
	// participant has one with the bot, else one that reaches the participant by page mode.
	// Handlers may greet the participant; the other participants hear only what the room
	// relays.
	EventJoin
	// EventLeave says a participant left a room (Event.Room): Reason says why (EndByPeer for
	// a BYE, EndLeft for /leave, EndIdle, EndByBot when removed or the room closed). Session
	// is the participant's conversation, possibly ended already: do not count on replies.
	EventLeave
)

// String returns the name used in logs and rule files: "message", "session.start",
// "session.end", "typing", "idle", "room.join" or "room.leave".
func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventSessionStart:
		return "session.start"
	case EventSessionEnd:
		return "session.end"
	case EventTyping:
		return "typing"
	case EventIdle:
		return "idle"
	case EventJoin:
		return "room.join"
	case EventLeave:
		return "room.leave"
	}
	return "unknown"
}

// Mode is the IM dialect of a conversation.
type Mode int

// Conversation modes.
const (
	// ModePage is RFC 3428 page mode: each message is an out-of-dialog MESSAGE and the
	// conversation is the pair (bot address, peer address) until it is idle too long.
	ModePage Mode = iota + 1
	// ModeSession is an INVITE-based IM session (OCS, Lync, Skype for Business style):
	// messages and typing travel inside the dialog until a BYE.
	ModeSession
)

// String returns "page" or "session".
func (m Mode) String() string {
	switch m {
	case ModePage:
		return "page"
	case ModeSession:
		return "session"
	}
	return "unknown"
}

// EndReason says why a conversation ended.
type EndReason string

// Reasons a conversation ends.
const (
	EndByPeer     EndReason = "bye"      // the peer sent BYE
	EndByBot      EndReason = "closed"   // a handler closed it (Responder.End or Session.Close)
	EndIdle       EndReason = "idle"     // nothing happened for the idle timeout
	EndDeadDialog EndReason = "dead"     // the peer answered 408, 480 or 481 to a request in the dialog
	EndShutdown   EndReason = "shutdown" // the bot is shutting down
	EndEvicted    EndReason = "evicted"  // a page-mode conversation made room for a new one
	EndLeft       EndReason = "left"     // a participant left a room on its own (/leave): EventLeave
)

// Peer identifies the other party of a conversation.
type Peer struct {
	// URI is the peer's address of record, such as "sip:alice@example.com", without
	// parameters.
	URI string
	// User and Domain are the parts of URI.
	User, Domain string
	// DisplayName is the display name the peer sent, if any.
	DisplayName string
	// Verified is true when the bot knows the peer is who URI says: a trusted proxy
	// asserted it (P-Asserted-Identity) or the peer passed the bot's digest challenge, or
	// the bot itself chose the peer (a conversation it opened). Otherwise URI is only what
	// the request's From header claims: grant nothing on it (see TrustConfig).
	Verified bool
	// Guest is true for an anonymous web visitor (TrustConfig.Guests): Verified as that
	// visitor, whose address is its own and new, and reached only over its own connection.
	Guest bool
}

// Name returns the display name, or the user part when there is none.
func (p Peer) Name() string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.User
}

// peerFromURI makes the Peer of an address. Its URI is in the form addresses compare in
// (RFC 3261 §19.1.4): scheme and host in lower case, and in the user part the characters
// that need no escaping unescaped (sip:mall%6Fry@Example.COM is sip:mallory@example.com),
// so that access lists, rate limits and conversation keys cannot be dodged by spelling an
// address another way. The user part stays case-sensitive, as RFC 3261 says: Mallory and
// mallory are two users.
func peerFromURI(u sip.Uri, display string) Peer {
	user, host := canonicalUser(u.User), strings.ToLower(u.Host)
	aor := sip.Uri{Scheme: strings.ToLower(u.Scheme), User: user, Host: host, Port: u.Port}
	if aor.Scheme == "" {
		aor.Scheme = "sip"
	}
	return Peer{
		URI:         aor.String(),
		User:        user,
		Domain:      host,
		DisplayName: strings.TrimSpace(display),
	}
}

// canonicalUser decodes the escapes of a SIP URI's user part that stand for characters the
// user part may carry as they are, and writes the others in upper-case hex.
func canonicalUser(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			c := unhex(s[i+1])<<4 | unhex(s[i+2])
			if userSafe(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(s[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// userSafe reports the characters a SIP URI's user part carries unescaped (RFC 3261 §25.1:
// unreserved and user-unreserved).
func userSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// Event is one thing that happened in a conversation. Handlers must not modify it.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Session is the conversation the event belongs to. In events from the bot it is a
	// *Session; in unit tests it is whatever the test built (bottest.NewEvent gives a
	// bottest.Conversation). It is nil only in an event built by hand without one.
	Session Conversation
	// Time is when the bot received it.
	Time time.Time
	// Text is the message text (EventMessage), decoded to UTF-8: text/html arrives with its
	// tags stripped and multipart/alternative as its plain part.
	Text string
	// HTML is the original markup when the message arrived as text/html.
	HTML string
	// ContentType is the Content-Type of the SIP request the event came from.
	ContentType string
	// Typing is true when the peer started typing, false when it stopped (EventTyping).
	Typing bool
	// Reason says why the session ended (EventSessionEnd), or why a participant left a room
	// (EventLeave).
	Reason EndReason
	// Room is the ID of the room a participant joined or left (EventJoin, EventLeave).
	Room string

	req *sip.Request
	// turn is the number of the peer's messages in the session when the event was queued
	// (this one included): a higher count means the peer wrote again since.
	turn int64
}

// SIPRequest returns the SIP request the event came from, or nil for events the bot made
// itself (such as an idle timeout). It is an escape hatch for handlers that need a header the
// event does not carry; it must not be modified.
func (e *Event) SIPRequest() *sip.Request { return e.req }
