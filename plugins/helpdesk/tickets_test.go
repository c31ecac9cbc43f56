package helpdesk

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/rules"
	"github.com/imbot-dev/imbot/store"
)

// testRules call every function of the plugin the way a rule file does, so that the
// functions get the rule's Info (conversation key and sender) in their context.
const testRules = `version: 1
rules:
  - name: create
    regex: '^create (?P<urgency>\S+) (?P<summary>.*)$'
    call: tickets.create(match.summary, match.urgency)
    reply: "{{ result }}"
  - name: create-empty
    match: create nothing
    priority: 1
    call: tickets.create("  ", "high")
    reply: unreachable
  - name: status
    regex: '^status (?P<number>.*)$'
    reply: "{{ tickets.status(match.number) }}"
  - name: mine
    match: mine
    reply: "{{ tickets.mine() }}"
  - name: urgency
    regex: '^urgency (?P<text>.*)$'
    reply: "[{{ tickets.urgency(match.text) }}]"
`

var (
	alice = bot.Peer{URI: "sip:alice@example.com", User: "alice", Domain: "example.com", Verified: true}
	bob   = bot.Peer{URI: "sip:bob@example.com", User: "bob", Domain: "example.com", Verified: true}
	// claimsAlice writes from Alice's address, unverified.
	claimsAlice = bot.Peer{URI: "sip:alice@example.com", User: "alice", Domain: "example.com"}
)

// newEngine returns an engine running testRules with the plugin backed by st.
func newEngine(t *testing.T, st Store) *rules.Engine {
	t.Helper()
	fsys := fstest.MapFS{"t.yaml": {Data: []byte(testRules)}}
	e, err := rules.New(rules.Options{FS: fsys, Funcs: Funcs(st)}, "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// say sends text as peer and returns the reply.
func say(t *testing.T, e *rules.Engine, peer bot.Peer, text string) (string, error) {
	t.Helper()
	out, err := e.Process(context.Background(), rules.Input{Text: text, Key: "bot " + peer.URI, Peer: peer}, store.ConversationState{})
	if err != nil {
		return "", err
	}
	msgs := out.Replies()
	if len(msgs) != 1 {
		t.Fatalf("%q: %d replies %v, want 1", text, len(msgs), msgs)
	}
	return msgs[0].Text, nil
}

func TestConversation(t *testing.T) {
	mem := &store.Memory{}
	e := newEngine(t, mem)
	if _, err := mem.CreateTicket(context.Background(), store.Ticket{Key: "bot sip:carol@example.com", Peer: "sip:carol@example.com",
		Summary: "Laptop stolen", Urgency: "high", Assignee: "sip:ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		peer bot.Peer
		say  string
		want string
	}{
		{"no tickets yet", alice, "mine", "You have no open tickets."},
		{"creates the first of alice's", alice, "create urgent VPN   drops every hour", "1002"},
		{"one listed", alice, "mine", "You have one open ticket: #1002 “VPN drops every hour” (high)."},
		{"creates with a synonym", alice, "create medium Printer on floor 2 jams", "1003"},
		{"newest first", alice, "mine", "You have 2 open tickets: #1003 “Printer on floor 2 jams” (normal), #1002 “VPN drops every hour” (high)."},
		{"status of own ticket", alice, "status 1002", "Ticket #1002 “VPN drops every hour” (urgency high) is open; a technician will pick it up soon."},
		{"status with a hash", alice, "status #1003.", "Ticket #1003 “Printer on floor 2 jams” (urgency normal) is open; a technician will pick it up soon."},
		{"no such ticket", alice, "status 1234", "I found no ticket #1234. Check the number, or type 'my tickets' to list yours."},
		{"not a number", alice, "status soon", `"soon" is not a ticket number; ticket numbers look like 1042.`},
		{"someone else's ticket", bob, "status 1002", "Ticket #1002 was opened by someone else, so I cannot show it to you."},
		{"assigned ticket", bot.Peer{URI: "sip:carol@EXAMPLE.com;transport=tcp", Verified: true}, "status 1001", "Ticket #1001 “Laptop stolen” (urgency high) is open and ann is working on it."},
		{"bob has none", bob, "mine", "You have no open tickets."},

		// Someone who only claims Alice's address sees nothing, not even whether a ticket
		// exists, and a ticket it opens is nobody's.
		{"unverified: mine", claimsAlice, "mine", NotVerified},
		{"unverified: status of alice's", claimsAlice, "status 1002", NotVerified},
		{"unverified: status of none", claimsAlice, "status 1234", NotVerified},
		{"unverified: not a number", claimsAlice, "status soon", NotVerified},
		{"unverified: creates", claimsAlice, "create low Mouse is sticky", "1004"},
		{"unverified's ticket not alice's", alice, "status 1004", "Ticket #1004 was opened by someone else, so I cannot show it to you."},
		{"unverified's ticket not listed", alice, "mine", "You have 2 open tickets: #1003 “Printer on floor 2 jams” (normal), #1002 “VPN drops every hour” (high)."},
		{"urgency word", alice, "urgency it is URGENT!", "[high]"},
		{"urgency none", alice, "urgency dunno", "[]"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got, err := say(t, e, s.peer, s.say)
			if err != nil {
				t.Fatal(err)
			}
			if got != s.want {
				t.Errorf("%q: got %q, want %q", s.say, got, s.want)
			}
		})
	}

	tk, err := mem.Ticket(context.Background(), 1002)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Key != "bot sip:alice@example.com" || tk.Peer != alice.URI || tk.Summary != "VPN drops every hour" ||
		tk.Urgency != "high" || tk.Status != store.StatusOpen || !strings.Contains(tk.Notes, "rule create") {
		t.Errorf("stored ticket: %+v", tk)
	}
	tk, err = mem.Ticket(context.Background(), 1004)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Peer != "" || !strings.HasPrefix(tk.Notes, "The sender was not verified; it claimed to be sip:alice@example.com.") {
		t.Errorf("ticket of an unverified sender: %+v", tk)
	}
}

func TestCreateErrors(t *testing.T) {
	mem := &store.Memory{}
	e := newEngine(t, mem)
	for _, c := range []struct{ name, say, want string }{
		{"empty summary", "create nothing", "summary is empty"},
		{"unknown urgency", "create whatever Screen flickers", `urgency "whatever"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := say(t, e, alice, c.say)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if all, _ := mem.Tickets(context.Background(), "bot "+alice.URI, 0); len(all) != 0 {
		t.Errorf("failed calls stored tickets: %+v", all)
	}
}

// failingStore fails every call.
type failingStore struct{}

var errDisk = errors.New("disk on fire")

func (failingStore) CreateTicket(context.Context, store.Ticket) (int64, error) { return 0, errDisk }
func (failingStore) Ticket(context.Context, int64) (store.Ticket, error) {
	return store.Ticket{}, errDisk
}
func (failingStore) Tickets(context.Context, string, int) ([]store.Ticket, error) {
	return nil, errDisk
}

func TestStoreErrors(t *testing.T) {
	e := newEngine(t, failingStore{})
	for _, text := range []string{"create high Broken", "status 1001", "mine"} {
		t.Run(text, func(t *testing.T) {
			if _, err := say(t, e, alice, text); !errors.Is(err, errDisk) {
				t.Errorf("error %v, want the store's", err)
			}
		})
	}
}

func TestOutsideARule(t *testing.T) {
	fs := Funcs(&store.Memory{})
	for _, name := range []string{"tickets.create", "tickets.status", "tickets.mine"} {
		t.Run(name, func(t *testing.T) {
			_, err := fs[name].Call(context.Background(), "x", "high")
			if !errors.Is(err, errNoRule) {
				t.Errorf("error %v, want errNoRule", err)
			}
		})
	}
}

func TestUrgency(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"low", "low"}, {"Low please", "low"}, {"whenever you can", "low"},
		{"normal", "normal"}, {"MEDIUM", "normal"},
		{"high", "high"}, {"it's urgent!!", "high"}, {"critical", "high"}, {"ASAP", "high"},
		{"", ""}, {"tomorrow", ""}, {"highway", ""}, {"2", ""},
		{"low, no wait, high", "low"},
	} {
		t.Run(c.in, func(t *testing.T) {
			if got := Urgency(c.in); got != c.want {
				t.Errorf("Urgency(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1042", 1042, true}, {"#1042", 1042, true}, {" 1042. ", 1042, true},
		{"", 0, false}, {"abc", 0, false}, {"0", 0, false}, {"-5", 0, false}, {"12 34", 0, false},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, ok := ParseNumber(c.in)
			if got != c.want || ok != c.ok {
				t.Errorf("ParseNumber(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		name string
		tk   store.Ticket
		want string
	}{
		{"open", store.Ticket{Number: 1, Summary: "A", Urgency: "low", Status: "open"}, "Ticket #1 “A” (urgency low) is open; a technician will pick it up soon."},
		{"assigned", store.Ticket{Number: 2, Summary: "B", Status: "open", Assignee: "sip:Bob@Example.com"}, "Ticket #2 “B” is open and Bob is working on it."},
		{"assigned by name", store.Ticket{Number: 3, Summary: "C", Assignee: "Ann"}, "Ticket #3 “C” is open and Ann is working on it."},
		{"closed", store.Ticket{Number: 4, Summary: "D", Urgency: "high", Status: "closed"}, "Ticket #4 “D” (urgency high) is closed."},
		{"other status", store.Ticket{Number: 5, Summary: "E", Status: "waiting for parts"}, "Ticket #5 “E” is waiting for parts."},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Describe(c.tk); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestSummaryIsCut(t *testing.T) {
	long := strings.Repeat("word ", 100)
	got := clean(long)
	if n := len([]rune(got)); n != MaxSummary || !strings.HasSuffix(got, "…") {
		t.Errorf("clean: %d runes, %q", n, got)
	}
}
