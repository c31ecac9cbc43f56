// Package helpdesk is the helpdesk plugin of imbot: the functions rules call to open helpdesk
// tickets and to look them up. The rule file names them like any built-in function:
//
//	rules:
//	  - name: ticket-confirm
//	    state: ticket-confirm
//	    match: ["(yes|y|ok|sure) *"]
//	    call: tickets.create(vars.summary, vars.urgency)
//	    reply: "Done: ticket #{{ result }} is open."
//
//	  - name: ticket-status
//	    regex: '(?i)ticket\s*#?\s*(?P<number>\d+)'
//	    reply: "{{ tickets.status(match.number) }}"
//
// The imbot command has it compiled in (Plugin): `imbot run` registers the functions when its
// config file lists the plugin (`plugins: [helpdesk]`), and `imbot check`, `imbot test` and
// `imbot chat` always do, so that rule files calling these functions load everywhere.
//
// A program with its own rules engine registers them through Funcs, backed by the bot's
// store (a store/sqlite *DB in production, a *store.Memory in tests):
//
//	engine, err := rules.New(rules.Options{Store: db, Funcs: helpdesk.Funcs(db)}, "helpdesk.yaml")
package helpdesk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/handlers"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// Store is what the plugin needs of a store: creating tickets (handlers.TicketStore, which
// the handoff handler uses too) and reading them back. store/sqlite's *DB and *store.Memory
// implement it.
type Store interface {
	handlers.TicketStore
	// Ticket returns the ticket with this number, or an error wrapping store.ErrNotFound.
	Ticket(ctx context.Context, number int64) (store.Ticket, error)
	// Tickets returns the last limit tickets of the conversation key, oldest first.
	Tickets(ctx context.Context, key string, limit int) ([]store.Ticket, error)
}

// Urgencies are the urgency levels tickets are stored with, from least to most urgent.
var Urgencies = []string{"low", "normal", "high"}

// MaxSummary is the longest ticket summary kept, in characters; a longer one is cut.
const MaxSummary = 200

// maxListed is how many open tickets tickets.mine lists.
const maxListed = 5

// NotVerified is what tickets.status and tickets.mine answer a sender whose identity the bot
// could not verify (bot.Peer.Verified false): its address is only what it claims, so no
// ticket is shown to it.
const NotVerified = "I could not verify your identity, so I cannot show you any ticket. " +
	"Write to me from your company account (signed in) to see yours."

// Funcs returns the functions the helpdesk rules call, backed by s:
//
//	tickets.create(summary, urgency)  opens a ticket for the user the rule is talking to and
//	                                  returns its number (an int64, 1001 for the first)
//	tickets.status(number)            a sentence about ticket number ("1042", "#1042"):
//	                                  its summary, urgency and status, or why it cannot be
//	                                  shown ("I found no ticket #1042. ...")
//	tickets.mine()                    a sentence listing the user's open tickets
//	tickets.urgency(text)             the urgency a user's answer names ("low", "normal" or
//	                                  "high"; synonyms such as "urgent" or "medium" count),
//	                                  or "" when it names none
//
// The functions take the conversation key and the sender from the rule's context
// (rules.InfoFrom). A user sees only the tickets whose Peer is their own address, and only
// once the bot has verified who they are (bot.Peer.Verified): to an unverified sender
// tickets.status and tickets.mine answer NotVerified and show nothing, not even whether a
// ticket exists. Anyone may open a ticket; one opened by an unverified sender records the
// address it claimed in its Notes and has no Peer, so that it shows up for nobody.
func Funcs(s Store) rules.Funcs {
	t := tickets{s: s}
	return rules.Funcs{
		"tickets.create":  rules.Func2(t.create),
		"tickets.status":  rules.Func1(t.status),
		"tickets.mine":    rules.Func0(t.mine),
		"tickets.urgency": rules.Func1(func(_ context.Context, text string) (string, error) { return Urgency(text), nil }),
	}
}

// tickets implements the functions of Funcs.
type tickets struct{ s Store }

// errNoRule is returned when a function is called without a rule's Info in its context.
var errNoRule = errors.New("helpdesk plugin: called outside a rule (no rules.Info in the context)")

func (t tickets) create(ctx context.Context, summary, urgency string) (int64, error) {
	info, ok := rules.InfoFrom(ctx)
	if !ok {
		return 0, errNoRule
	}
	summary = clean(summary)
	if summary == "" {
		return 0, errors.New("tickets.create: the summary is empty")
	}
	u := Urgency(urgency)
	if u == "" {
		return 0, fmt.Errorf("tickets.create: urgency %q: want one of %s", urgency, strings.Join(Urgencies, ", "))
	}
	tk := store.Ticket{
		Key: info.Key, Peer: info.Sender.URI, Summary: summary, Urgency: u, Status: store.StatusOpen,
		Notes: "Opened by the helpdesk bot (rule " + info.Rule + ").",
	}
	if !info.Sender.Verified {
		tk.Peer = ""
		tk.Notes = "The sender was not verified; it claimed to be " + info.Sender.URI + ".\n" + tk.Notes
	}
	n, err := t.s.CreateTicket(ctx, tk)
	if err != nil {
		return 0, fmt.Errorf("tickets.create: %w", err)
	}
	return n, nil
}

func (t tickets) status(ctx context.Context, number string) (string, error) {
	info, ok := rules.InfoFrom(ctx)
	if !ok {
		return "", errNoRule
	}
	if !info.Sender.Verified {
		return NotVerified, nil
	}
	n, ok := ParseNumber(number)
	if !ok {
		return fmt.Sprintf("%q is not a ticket number; ticket numbers look like 1042.", strings.TrimSpace(number)), nil
	}
	tk, err := t.s.Ticket(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("I found no ticket #%d. Check the number, or type 'my tickets' to list yours.", n), nil
	}
	if err != nil {
		return "", fmt.Errorf("tickets.status: %w", err)
	}
	if !owns(info.Sender, tk) {
		return fmt.Sprintf("Ticket #%d was opened by someone else, so I cannot show it to you.", n), nil
	}
	return Describe(tk), nil
}

func (t tickets) mine(ctx context.Context) (string, error) {
	info, ok := rules.InfoFrom(ctx)
	if !ok {
		return "", errNoRule
	}
	if !info.Sender.Verified {
		return NotVerified, nil
	}
	all, err := t.s.Tickets(ctx, info.Key, 0)
	if err != nil {
		return "", fmt.Errorf("tickets.mine: %w", err)
	}
	var open []string
	for i := len(all) - 1; i >= 0; i-- { // newest first
		tk := all[i]
		if tk.Status == store.StatusClosed || !owns(info.Sender, tk) {
			continue
		}
		open = append(open, fmt.Sprintf("#%d %s (%s)", tk.Number, quote(tk.Summary), tk.Urgency))
	}
	switch {
	case len(open) == 0:
		return "You have no open tickets.", nil
	case len(open) == 1:
		return "You have one open ticket: " + open[0] + ".", nil
	case len(open) > maxListed:
		return fmt.Sprintf("You have %d open tickets; the latest are: %s.", len(open), strings.Join(open[:maxListed], ", ")), nil
	}
	return fmt.Sprintf("You have %d open tickets: %s.", len(open), strings.Join(open, ", ")), nil
}

// Describe returns the sentence tickets.status answers for a ticket the user may see.
func Describe(tk store.Ticket) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Ticket #%d %s", tk.Number, quote(tk.Summary))
	if tk.Urgency != "" {
		fmt.Fprintf(&b, " (urgency %s)", tk.Urgency)
	}
	switch status := tk.Status; {
	case status == store.StatusClosed:
		b.WriteString(" is closed.")
	case status == "" || status == store.StatusOpen:
		b.WriteString(" is open")
		if tk.Assignee != "" {
			fmt.Fprintf(&b, " and %s is working on it.", who(tk.Assignee))
		} else {
			b.WriteString("; a technician will pick it up soon.")
		}
	default:
		fmt.Fprintf(&b, " is %s.", status)
	}
	return b.String()
}

// Urgency returns the urgency level a user's words name: "low", "normal" or "high", or ""
// when they name none. Synonyms count ("urgent" and "critical" are high, "medium" is
// normal), case does not, and the first level named wins.
func Urgency(text string) string {
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
		switch w {
		case "low", "minor", "whenever":
			return "low"
		case "normal", "medium", "moderate", "average":
			return "normal"
		case "high", "urgent", "critical", "asap", "emergency", "blocking":
			return "high"
		}
	}
	return ""
}

// ParseNumber reads a ticket number as users write it: "1042", "#1042", " 1042. ".
func ParseNumber(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "#")
	s = strings.TrimRight(s, ".!?, ")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// clean collapses white space and cuts a summary to MaxSummary characters.
func clean(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > MaxSummary {
		r := []rune(s)
		s = strings.TrimSpace(string(r[:MaxSummary-1])) + "…"
	}
	return s
}

func quote(s string) string { return "“" + s + "”" }

// owns reports whether sender may see ticket tk: it is Verified and tk was opened from its
// address. A ticket without a Peer belongs to nobody the bot knows.
func owns(sender bot.Peer, tk store.Ticket) bool {
	return sender.Verified && tk.Peer != "" && samePeer(tk.Peer, sender.URI)
}

// samePeer compares two SIP addresses, ignoring the scheme, URI parameters and the case of
// the host.
func samePeer(a, b string) bool { return normURI(a) == normURI(b) }

func normURI(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "<")
	if i := strings.IndexAny(s, ";?>"); i >= 0 {
		s = s[:i]
	}
	for _, scheme := range []string{"sip:", "sips:"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
			break
		}
	}
	// User parts are case-sensitive in SIP, host names are not.
	if user, host, ok := strings.Cut(s, "@"); ok {
		return user + "@" + strings.ToLower(host)
	}
	return strings.ToLower(s)
}

// who names an assignee: the user part of a SIP address, or the text as it is.
func who(assignee string) string {
	s := normURI(assignee)
	if user, _, ok := strings.Cut(s, "@"); ok && user != "" {
		return user
	}
	return assignee
}
