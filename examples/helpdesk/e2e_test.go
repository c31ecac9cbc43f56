package helpdesk_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// The imbot binary, built once for the tests of this package.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// imbotBinary builds ./cmd/imbot from the module root (found with `go env GOMOD`), with
// the race detector when the tests have it, and returns the path of the binary.

// endedText is what the user gets when the technician ends a chat: the survey question
// (handoff.texts.ended in imbot.yaml).
const endedText = "Ann has left the conversation. How would you rate the help you got, from 1 (poor) to 5 (excellent)? Or just write your next question."

func imbotBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		out, err := exec.Command(goTool, "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			buildErr = errors.New("go env GOMOD: not inside the imbot module")
			return
		}
		if binDir, err = os.MkdirTemp("", "imbot-e2e-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "imbot")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, "./cmd/imbot")...)
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/imbot: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestEndToEnd runs the helpdesk example as an operator would, over real SIP on loopback:
// the imbot binary with the example's rules and plugin, a SQLite store, metrics over HTTP,
// a user and a technician (agent) played by bottest peers.
//
// The bot trusts a proxy at 127.0.0.1, where every peer writes from; the users and the
// technician are verified as behind a real proxy: their requests carry P-Asserted-Identity.
// The user opens a ticket, asks for a person; the technician accepts, they chat (messages
// relayed both ways, the bot silent), the technician ends with /done; the user rates the
// help. Senders that only claim the technician's or the user's address, and one on the deny
// list, are refused at the door. /metrics counts it all. Then the user starts a second ticket, the bot is killed
// with SIGKILL after the summary, started again on the same config, and the user's next
// message (the urgency) continues the flow. Another user talks with the technician when the
// bot is killed again: after the restart both are told, and go on talking. Another user whom the rules do not understand
// three times in a row is offered to the technician, who passes: that user gets a ticket.
// The database then holds the tickets, the transcript and the rating.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the imbot binary")
	}
	bin := imbotBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	port := freeSIPPort(t)
	botAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	identity := "sip:helpdesk@" + botAddr
	alice := bottest.NewPeer(t, bottest.Options{User: "alice", DisplayName: "Alice", Bot: botAddr, BotURI: identity, AssertIdentity: true})
	ann := bottest.NewPeer(t, bottest.Options{User: "ann", DisplayName: "Ann", Bot: botAddr, BotURI: identity, AssertIdentity: true})

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "helpdesk.db")
	cfgPath := writeConfig(t, dir, port, ann.URI())

	// --- First run ---------------------------------------------------------------------
	b := startBot(t, ctx, bin, cfgPath)
	user := &inbox{p: alice}
	agent := &inbox{p: ann}

	say(t, ctx, alice, "Hello")
	user.expect(t, ctx, "Hi Alice! I am the Contoso IT helpdesk bot. Type 'help' to see what I can do.")
	user.expect(t, ctx, "Our technicians are in now, so you can also ask for a person.")
	user.expect(t, ctx, "Hello Alice! What can I do for you? Type 'help' for topics.")

	// A ticket, in three steps.
	say(t, ctx, alice, "I want to open a ticket")
	user.expect(t, ctx, "Let's open a ticket. In one sentence, what is the problem? (or 'cancel')")
	say(t, ctx, alice, "The VPN drops every hour")
	user.expect(t, ctx, "Got it. How urgent is it: low, normal or high? (High: you cannot work at all.)")
	say(t, ctx, alice, "high")
	user.expect(t, ctx, "I will open this ticket: “The VPN drops every hour”, urgency high. Shall I go ahead? (yes/no)")
	say(t, ctx, alice, "yes")
	user.expect(t, ctx, "Done: your ticket number is 1001. A technician will contact you; ask me 'status of ticket 1001' any time.")
	say(t, ctx, alice, "status of ticket 1001")
	user.expect(t, ctx, "Ticket #1001 “The VPN drops every hour” (urgency high) is open; a technician will pick it up soon.")

	// A person: the rule hands over, the technician gets an offer with the transcript.
	say(t, ctx, alice, "I want to talk to a person")
	user.expect(t, ctx, "I am handing you over to a technician. When you are done, I will ask you one quick question about how it went.")
	user.expect(t, ctx, "Let me find a person to help you. Please wait a moment.")
	// The offer shows the transcript so far: over UDP it comes in several messages.
	offer := agent.expectLong(t, ctx, "#1 Alice ("+alice.URI()+") is waiting for help.", "bot: Let me find a person to help you. Please wait a moment.")
	for _, w := range []string{"Alice: I want to open a ticket", "bot: Done: your ticket number is 1001.", "Alice: I want to talk to a person"} {
		if !strings.Contains(offer, w) {
			t.Errorf("the offer lacks the transcript line %q:\n%s", w, offer)
		}
	}
	say(t, ctx, ann, "/accept")
	agent.expect(t, ctx, "You are now talking with Alice (#1). What you write goes to them; /done ends the conversation.")
	user.expect(t, ctx, "Ann is now with you.")
	say(t, ctx, ann, "Hi Alice, Ann here. Is the VPN still dropping?")
	user.expect(t, ctx, "Ann: Hi Alice, Ann here. Is the VPN still dropping?")
	say(t, ctx, alice, "Yes, every hour on the hour")
	agent.expect(t, ctx, "#1 Alice: Yes, every hour on the hour")
	say(t, ctx, ann, "Fixed: your VPN profile was outdated. Reconnect and it will hold.")
	user.expect(t, ctx, "Ann: Fixed: your VPN profile was outdated. Reconnect and it will hold.")
	say(t, ctx, ann, "/done")
	// The survey question comes with the technician's departure; a score given right then
	// is its answer.
	user.expect(t, ctx, endedText)
	agent.expect(t, ctx, "Conversation #1 with Alice ended.")
	say(t, ctx, alice, "5 very quick")
	user.expect(t, ctx, "Thank you for your rating!")

	// A second chat with Ann; this time the user's next message is a question, not a score:
	// the rules answer it (the survey does not swallow it).
	say(t, ctx, alice, "I want to talk to a person")
	user.expect(t, ctx, "I am handing you over to a technician. When you are done, I will ask you one quick question about how it went.")
	user.expect(t, ctx, "Let me find a person to help you. Please wait a moment.")
	// (the transcript in the offer holds the first chat too: the suffix is the part only the
	// second request ends with)
	agent.expectLong(t, ctx, "#2 Alice ("+alice.URI()+") is waiting for help.", "bot: Thank you for your rating! "+
		"Alice: I want to talk to a person "+
		"bot: I am handing you over to a technician. When you are done, I will ask you one quick question about how it went. "+
		"bot: Let me find a person to help you. Please wait a moment.")
	say(t, ctx, ann, "/accept")
	agent.expect(t, ctx, "You are now talking with Alice (#2). What you write goes to them; /done ends the conversation.")
	user.expect(t, ctx, "Ann is now with you.")
	say(t, ctx, ann, "/done")
	user.expect(t, ctx, endedText)
	agent.expect(t, ctx, "Conversation #2 with Alice ended.")
	say(t, ctx, alice, "what are your office hours")
	user.expectLong(t, ctx, "Our technicians answer chats ", "and they are in right now. I answer around the clock.")

	// The bot stayed silent while the technician talked: everything Alice got is accounted
	// for above, and Ann got nothing else.
	user.none(t)
	agent.none(t)

	// The access list refuses at the door Mallory (denied, asserted or not), and senders that
	// claim Ann's or Alice's address without the proxy's assertion (the allow list admits
	// verified users only): none gets a word, or anything of Ann's or Alice's.
	for _, c := range []struct {
		name string
		opts bottest.Options
		text string
	}{
		{"denied", bottest.Options{User: "mallory", AssertIdentity: true}, "let me in"},
		{"denied, unverified", bottest.Options{User: "mallory"}, "let me in"},
		{"claims to be the technician", bottest.Options{User: "eve", From: ann.URI()}, "/list"},
		{"claims to be the user", bottest.Options{User: "eve", From: alice.URI()}, "status of ticket 1001"},
	} {
		c.opts.Bot, c.opts.BotURI = botAddr, identity
		p := bottest.NewPeer(t, c.opts)
		if res, err := p.SendPage(ctx, c.text); err != nil || res.StatusCode != 403 {
			t.Errorf("%s: %q answered %v, %v; want 403", c.name, c.text, res, err)
		}
		if texts := p.Texts(); len(texts) != 0 {
			t.Errorf("%s got %q", c.name, texts)
		}
	}

	checkMetrics(t, ctx, b.httpAddr)

	// A second ticket; the bot dies after the summary.
	say(t, ctx, alice, "I'd like to report a problem")
	user.expect(t, ctx, "Let's open a ticket. In one sentence, what is the problem? (or 'cancel')")
	say(t, ctx, alice, "The printer on floor 3 prints blank pages")
	user.expect(t, ctx, "Got it. How urgent is it: low, normal or high? (High: you cannot work at all.)")
	b.kill(t)

	// --- Second run, same config and database --------------------------------------------
	b = startBot(t, ctx, bin, cfgPath)
	say(t, ctx, alice, "normal")
	user.expect(t, ctx, "I will open this ticket: “The printer on floor 3 prints blank pages”, urgency normal. Shall I go ahead? (yes/no)")
	say(t, ctx, alice, "yes please")
	user.expect(t, ctx, "Done: your ticket number is 1002. A technician will contact you; ask me 'status of ticket 1002' any time.")
	user.none(t)

	// Carol talks with Ann when the bot is killed again: after the restart both are told,
	// and their conversation goes on where it was.
	carolPeer := bottest.NewPeer(t, bottest.Options{User: "carol", DisplayName: "Carol", Bot: botAddr, BotURI: identity, AssertIdentity: true})
	carol := &inbox{p: carolPeer}
	say(t, ctx, carolPeer, "Hello")
	carol.expect(t, ctx, "Hi Carol! *")
	carol.expect(t, ctx, "*")
	carol.expect(t, ctx, "Hello Carol! *")
	say(t, ctx, carolPeer, "I want to talk to a person")
	carol.expect(t, ctx, "I am handing you over to a technician. *")
	carol.expect(t, ctx, "Let me find a person to help you. Please wait a moment.")
	agent.expectLong(t, ctx, "#3 Carol ("+carolPeer.URI()+") is waiting for help.", "bot: Let me find a person to help you. Please wait a moment.")
	say(t, ctx, ann, "/accept")
	agent.expect(t, ctx, "You are now talking with Carol (#3). What you write goes to them; /done ends the conversation.")
	carol.expect(t, ctx, "Ann is now with you.")
	b.kill(t)

	// --- Third run: the handoff goes on -------------------------------------------------
	b = startBot(t, ctx, bin, cfgPath)
	agent.expect(t, ctx, "(The helpdesk restarted; your conversation #3 with Carol continues.)")
	carol.expect(t, ctx, "(The helpdesk restarted; your conversation #3 with Ann continues.)")
	say(t, ctx, ann, "Still with you, Carol?")
	carol.expect(t, ctx, "Ann: Still with you, Carol?")
	say(t, ctx, carolPeer, "Yes, the printer works now")
	agent.expect(t, ctx, "#3 Carol: Yes, the printer works now")
	say(t, ctx, ann, "/done")
	carol.expect(t, ctx, endedText)
	agent.expect(t, ctx, "Conversation #3 with Carol ended.")
	carol.none(t)

	// Bob writes three messages nothing understands: a person is called (no_match_limit).
	// Ann passes, nobody else is there: Bob gets a ticket.
	bobPeer := bottest.NewPeer(t, bottest.Options{User: "bob", DisplayName: "Bob", Bot: botAddr, BotURI: identity, AssertIdentity: true})
	bob := &inbox{p: bobPeer}
	say(t, ctx, bobPeer, "asdf qwerty")
	bob.expect(t, ctx, "Hi Bob! I am the Contoso IT helpdesk bot. Type 'help' to see what I can do.")
	bob.expect(t, ctx, "Our technicians are in now, so you can also ask for a person.")
	bob.expect(t, ctx, "Sorry, I did not get that. Type 'help' to see what I can do.")
	say(t, ctx, bobPeer, "zxcv")
	bob.expect(t, ctx, "I am still not sure I understand. Type 'ticket' to open a ticket, or 'agent' to reach a person.")
	say(t, ctx, bobPeer, "blorp")
	bob.expect(t, ctx, "Sorry, I did not get that. Type 'help' to see what I can do.")
	bob.expect(t, ctx, "Let me find a person to help you. Please wait a moment.")
	// Numbers continue across restarts.
	agent.expectLong(t, ctx, "#4 Bob ("+bobPeer.URI()+") is waiting for help.", "bot: Let me find a person to help you. Please wait a moment.")
	say(t, ctx, ann, "/pass")
	agent.expect(t, ctx, "Passed #4.")
	bob.expect(t, ctx, "Sorry, nobody is available right now. I opened ticket #1003 for you; the helpdesk will get back to you.")
	bob.none(t)
	agent.none(t)
	b.stop(t)

	checkDatabase(t, dbPath, identity+" "+alice.URI(), alice.URI())
	checkNoAgentTicket(t, dbPath, identity+" "+bobPeer.URI())
}

// writeConfig writes the bot's config into dir: the example's imbot.yaml with loopback
// addresses on free ports (SIP on port, HTTP on any), a trusted proxy at 127.0.0.1 instead
// of the example's digest users, a database in dir, agent as the only technician, a rate
// limit no quick test trips, and Mallory on the deny list. The rules are the example's, with
// office hours all day long, so that the handoff does not depend on when the test runs.
func writeConfig(t *testing.T, dir string, port int, agent string) string {
	t.Helper()
	rulesSrc, err := os.ReadFile("helpdesk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const hours = `hours: "Mon-Fri 08:00-18:00"`
	if !bytes.Contains(rulesSrc, []byte(hours)) {
		t.Fatalf("helpdesk.yaml has no line %s to replace", hours)
	}
	rulesSrc = bytes.Replace(rulesSrc, []byte(hours), []byte(`hours: "daily 00:00-12:00,12:00-00:00"`), 1)
	rulesPath := filepath.Join(dir, "helpdesk.yaml")
	if err := os.WriteFile(rulesPath, rulesSrc, 0o644); err != nil {
		t.Fatal(err)
	}

	src, err := os.ReadFile("imbot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(src, &cfg); err != nil {
		t.Fatal(err)
	}
	section := func(key string) map[string]any {
		m, ok := cfg[key].(map[string]any)
		if !ok {
			t.Fatalf("imbot.yaml has no %s section", key)
		}
		return m
	}
	hp := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg["listen"] = []string{"udp://" + hp, "tcp://" + hp}
	cfg["identity"] = "sip:helpdesk@" + hp
	cfg["rules"] = []string{rulesPath}
	section("store")["path"] = filepath.Join(dir, "helpdesk.db")
	section("http")["listen"] = "127.0.0.1:0"
	section("timeouts")["shutdown"] = "5s"
	section("ratelimit")["burst"] = 50
	cfg["trust"] = map[string]any{"proxies": []string{"127.0.0.1"}}
	acl := section("access")
	acl["deny"] = append(acl["deny"].([]any), "sip:mallory@127.0.0.1")
	ho := section("handoff")
	ho["agents"] = []map[string]any{{"uri": agent, "name": "Ann", "max": 2}}
	ho["answer_timeout"] = "40s" // longer than the test: nobody times out
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "imbot.yaml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeSIPPort returns a loopback port free for both UDP and TCP, for the bot to listen on
// in both runs.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return 0
}

// botProcess is a running imbot binary.
type botProcess struct {
	cmd      *exec.Cmd
	stderr   *syncBuffer
	httpAddr string
	exited   chan struct{} // closed once the process has exited and its output is read
	err      error         // Wait's result, set before exited is closed
}

// startBot starts `imbot run --config cfg` and waits for its banner, which names the
// metrics address.
func startBot(t *testing.T, ctx context.Context, bin, cfg string) *botProcess {
	t.Helper()
	b := &botProcess{cmd: exec.Command(bin, "run", "--config", cfg), stderr: &syncBuffer{}, exited: make(chan struct{})}
	b.cmd.Stderr = b.stderr
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		b.err = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
		if strings.Contains(b.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in imbot")
		}
		if t.Failed() {
			t.Logf("imbot stderr:\n%s", b.stderr.String())
		}
	})
	var banner []string
	for b.httpAddr == "" {
		select {
		case line := <-lines:
			banner = append(banner, line)
			if _, rest, ok := strings.Cut(line, "metrics and health on http://"); ok {
				b.httpAddr, _, _ = strings.Cut(rest, "/")
			}
		case <-b.exited:
			t.Fatalf("imbot exited before its banner (%v); stdout %q; stderr:\n%s", b.err, banner, b.stderr.String())
		case <-ctx.Done():
			t.Fatalf("no banner from imbot: %v; stdout %q; stderr:\n%s", ctx.Err(), banner, b.stderr.String())
		}
	}
	if !strings.Contains(banner[0], "listening as sip:helpdesk@") {
		t.Errorf("banner: %q", banner)
	}
	// Ready once /readyz says so.
	waitReady(t, ctx, b)
	return b
}

// waitReady polls /readyz until it answers 200; each try waits on the request itself.
func waitReady(t *testing.T, ctx context.Context, b *botProcess) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if code, _ := get(ctx, "http://"+b.httpAddr+"/readyz"); code == http.StatusOK {
			return
		}
		select {
		case <-tick.C:
		case <-b.exited:
			t.Fatalf("imbot exited (%v); stderr:\n%s", b.err, b.stderr.String())
		case <-ctx.Done():
			t.Fatalf("imbot never ready: %v", ctx.Err())
		}
	}
}

// kill stops the bot with SIGKILL, as a crash would.
func (b *botProcess) kill(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.exited
}

// stop interrupts the bot (Ctrl-C) and checks it exits cleanly.
func (b *botProcess) stop(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.exited:
		if b.err != nil {
			t.Errorf("imbot exited with %v after an interrupt", b.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("imbot did not stop within 20s of an interrupt")
	}
}

// say sends text from peer to the bot in page mode and checks it is accepted.
func say(t *testing.T, ctx context.Context, p *bottest.Peer, text string) {
	t.Helper()
	res, err := p.SendPage(ctx, text)
	if err != nil {
		t.Fatalf("%s: sending %q: %v", p.URI(), text, err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("%s: %q answered %d %s", p.URI(), text, res.StatusCode, res.Reason)
	}
}

// inbox reads the texts a peer receives one after the other, in order.
type inbox struct {
	p    *bottest.Peer
	read int // texts consumed so far
}

// expect waits for the next text and checks it: exactly, as a prefix when want ends with
// " *", or not at all when want is "*". It returns the text.
func (in *inbox) expect(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n := in.read
	if _, err := in.p.Wait(wctx, func(bottest.Record) bool { return len(in.p.Texts()) > n }); err != nil {
		t.Fatalf("%s: waiting for %q: %v", in.p.URI(), want, err)
	}
	got := in.p.Texts()[n]
	in.read++
	ok := got == want || want == "*"
	if prefix, found := strings.CutSuffix(want, " *"); found {
		ok = strings.HasPrefix(got, prefix)
	}
	if !ok {
		t.Fatalf("%s got %q\nwant %q", in.p.URI(), got, want)
	}
	return got
}

// expectLong reads the parts of a long text that the bot split over several messages: the
// first starts with prefix, the last ends with suffix. It returns the parts joined, with
// white space collapsed.
func (in *inbox) expectLong(t *testing.T, ctx context.Context, prefix, suffix string) string {
	t.Helper()
	joined := collapse(in.expect(t, ctx, prefix+" *"))
	for !strings.HasSuffix(joined, collapse(suffix)) {
		joined = collapse(joined + " " + in.expect(t, ctx, "*"))
	}
	return joined
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// none checks that the peer got no text beyond those expected.
func (in *inbox) none(t *testing.T) {
	t.Helper()
	if texts := in.p.Texts(); len(texts) > in.read {
		t.Errorf("%s got unexpected texts: %q", in.p.URI(), texts[in.read:])
	}
}

// get fetches url and returns the status code and body.
func get(ctx context.Context, url string) (int, string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// checkMetrics reads /metrics after the first part of the conversation. The counters of an
// event are updated once its handler returns, just after its last reply left: /metrics is
// read again until they are all there, or the deadline passes.
func checkMetrics(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	// Alice sent 10 messages and Ann 4, all in page mode.
	want := map[string]float64{
		`imbot_messages_in_total{mode="page"}`:      14,
		`imbot_messages_out_total{mode="page"}`:     12,
		`imbot_handoffs_total{outcome="requested"}`: 1,
		`imbot_handoffs_total{outcome="accepted"}`:  1,
		`imbot_handoffs_total{outcome="done"}`:      1,
		`imbot_handoff_wait_seconds_count`:          1,
		`imbot_ratings_total{score="5"}`:            1,
		`imbot_rule_hits_total{rule="handoff"}`:     1,
		`imbot_rule_hits_total{rule="rating"}`:      1,
		`imbot_sip_responses_total{code="200"}`:     1,
		`imbot_sip_responses_total{code="403"}`:     1,
	}
	// Rules that answered count as rule hits too, by rule name.
	rulesHit := []string{"greet", "hello", "ticket", "ticket-summary", "ticket-urgency", "ticket-confirm",
		"ticket-status", "agent", "after-agent-score", "hours"}
	var m map[string]float64
	missing := func() []string {
		var out []string
		for series, min := range want {
			if m[series] < min {
				out = append(out, fmt.Sprintf("%s is %v; want at least %v", series, m[series], min))
			}
		}
		for _, r := range rulesHit {
			if m[`imbot_rule_hits_total{rule="`+r+`"}`] < 1 {
				out = append(out, "no rule hit for "+r)
			}
		}
		sort.Strings(out)
		return out
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
poll:
	for {
		code, body := get(wctx, "http://"+addr+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		m = parseMetrics(body)
		if len(missing()) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-wctx.Done():
			break poll
		}
	}
	for _, p := range missing() {
		t.Errorf("/metrics: %s; rule hits: %v", p, ruleHits(m))
	}
	for _, series := range []string{`imbot_handoffs_total{outcome="timeout"}`, `imbot_no_match_total`, `imbot_handler_errors_total{kind="message"}`} {
		if m[series] != 0 {
			t.Errorf("/metrics: %s is %v; want 0", series, m[series])
		}
	}
}

// parseMetrics reads the Prometheus text format into series → value.
func parseMetrics(body string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

func ruleHits(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		if strings.HasPrefix(k, "imbot_rule_hits_total") {
			out = append(out, fmt.Sprintf("%s=%v", strings.TrimPrefix(k, "imbot_rule_hits_total"), v))
		}
	}
	return out
}

// checkDatabase opens the database of the stopped bot and checks what it kept.
func checkDatabase(t *testing.T, path, key, peer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tickets, err := db.Tickets(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Ticket{
		{Number: 1001, Summary: "The VPN drops every hour", Urgency: "high"},
		{Number: 1002, Summary: "The printer on floor 3 prints blank pages", Urgency: "normal"},
	}
	if len(tickets) != len(want) {
		t.Fatalf("tickets of %q: %+v; want %d", key, tickets, len(want))
	}
	for i, w := range want {
		got := tickets[i]
		if got.Number != w.Number || got.Summary != w.Summary || got.Urgency != w.Urgency ||
			got.Status != store.StatusOpen || got.Peer != peer || got.Key != key {
			t.Errorf("ticket %d: %+v; want %+v, open, from %s", i+1, got, w, peer)
		}
	}

	ratings, err := db.Ratings(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ratings) != 1 || ratings[0].Score != 5 || ratings[0].Comment != "very quick" || ratings[0].Peer != peer || ratings[0].Key != key {
		t.Errorf("ratings: %+v; want one 5 \"very quick\" from %s", ratings, peer)
	}

	conv, err := db.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if conv.State != "" || fmt.Sprint(conv.Vars["last_ticket"]) != "1002" || conv.Vars["summary"] != nil {
		t.Errorf("conversation: state %q, vars %v; want the start state, last_ticket 1002 and no summary", conv.State, conv.Vars)
	}

	entries, err := db.Transcript(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Lines the transcript must hold, in this order (others may come between them).
	wantLines := []struct {
		dir      store.Direction
		text     string
		answerer string // "" when any
	}{
		// In time order: the user's first message came before the greeting it triggered.
		{store.In, "Hello", ""},
		{store.Out, "Hi Alice! I am the Contoso IT helpdesk bot. Type 'help' to see what I can do.", "greet"},
		{store.In, "yes", ""},
		{store.Out, "Done: your ticket number is 1001. A technician will contact you; ask me 'status of ticket 1001' any time.", "ticket-confirm"},
		{store.In, "I want to talk to a person", ""},
		{store.Out, "Let me find a person to help you. Please wait a moment.", "handoff"},
		{store.In, "Yes, every hour on the hour", ""},
		{store.In, "5 very quick", ""},
		{store.Out, "Thank you for your rating!", "rating"},
		{store.In, "The printer on floor 3 prints blank pages", ""},
		{store.In, "normal", ""}, // after the restart
		{store.Out, "I will open this ticket: “The printer on floor 3 prints blank pages”, urgency normal. Shall I go ahead? (yes/no)", "ticket-urgency"},
		{store.Out, "Done: your ticket number is 1002. A technician will contact you; ask me 'status of ticket 1002' any time.", "ticket-confirm"},
	}
	// Lines the handoff sent from the technician's conversation, in any order: each is
	// recorded once it was delivered, so the user's quick answer may come first.
	relayed := map[string]string{
		"Ann is now with you.":                                                   "handoff",
		"Ann: Hi Alice, Ann here. Is the VPN still dropping?":                    "agent:Ann",
		"Ann: Fixed: your VPN profile was outdated. Reconnect and it will hold.": "agent:Ann",
		endedText: "handoff",
	}
	i := 0
	for _, e := range entries {
		if e.Peer != peer || e.Time.IsZero() {
			t.Errorf("transcript entry %+v: want peer %s and a time", e, peer)
		}
		if a, ok := relayed[e.Text]; ok && e.Direction == store.Out {
			if e.Answerer != a {
				t.Errorf("transcript: %q answered by %q; want %q", e.Text, e.Answerer, a)
			}
			delete(relayed, e.Text)
			continue
		}
		if i < len(wantLines) && e.Direction == wantLines[i].dir && e.Text == wantLines[i].text {
			if a := wantLines[i].answerer; a != "" && e.Answerer != a {
				t.Errorf("transcript: %q answered by %q; want %q", e.Text, e.Answerer, a)
			}
			i++
		}
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %q (%s)", e.Direction, e.Text, e.Answerer))
	}
	if i < len(wantLines) {
		t.Errorf("transcript lacks %s %q (or has it out of order); it holds:\n%s", wantLines[i].dir, wantLines[i].text, strings.Join(got, "\n"))
	}
	for text := range relayed {
		t.Errorf("transcript lacks the relayed %q; it holds:\n%s", text, strings.Join(got, "\n"))
	}
}

// checkNoAgentTicket checks the ticket the handoff opened for a user nobody answered.
func checkNoAgentTicket(t *testing.T, path, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tk, err := db.Ticket(ctx, 1003)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Key != key || tk.Summary != "Asked for a person: blorp" || !strings.Contains(tk.Notes, "unavailable") {
		t.Errorf("ticket 1003: %+v; want Bob's, opened because nobody was available", tk)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
