package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/sqlite"
)

// This file runs the helpdesk example as an operator does, with real clients: Kamailio as
// registrar and proxy (authenticating its users and asserting who they are with
// P-Asserted-Identity), the imbot binary registered with it, a customer on baresip and
// technicians on linphonec.

var (
	imbotOnce sync.Once
	imbotPath string
	imbotErr  error
)

// imbotBinary builds ./cmd/imbot once per test run and returns its path.
func imbotBinary(t *testing.T) string {
	t.Helper()
	imbotOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imbot-interop-")
		if err != nil {
			imbotErr = err
			return
		}
		imbotPath = filepath.Join(dir, "imbot")
		cmd := exec.Command("go", "build", "-o", imbotPath, "./cmd/imbot")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			imbotErr = fmt.Errorf("go build ./cmd/imbot: %v\n%s", err, out)
		}
	})
	if imbotErr != nil {
		t.Fatal(imbotErr)
	}
	return imbotPath
}

// imbotProc is a running `imbot run`.
type imbotProc struct {
	t        *testing.T
	p        *proc
	out      *lineLog
	httpAddr string
	webAddr  string // the web chat's HTTP address, when the config has one
}

// botPasswordEnv names the variable that holds the bot's password at Kamailio.
const botPasswordEnv = "IMBOT_INTEROP_SIP_PASSWORD"

// startImbot runs `imbot run --config cfg`, and waits until it is registered with Kamailio
// (from mark on k's log; k nil: an instance that does not register) and ready (/readyz). It
// is killed when the test ends.
func startImbot(t *testing.T, k *kamailio, bin, cfg string) *imbotProc {
	t.Helper()
	out := &lineLog{}
	mark := 0
	if k != nil {
		mark = k.log.Len()
	}
	p, err := startProc("imbot", filepath.Dir(cfg), []string{botPasswordEnv + "=" + botPassword}, out, bin, "run", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &imbotProc{t: t, p: p, out: out}
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL, 0)
		if t.Failed() {
			t.Logf("imbot output:\n%s", out.String())
		}
	})
	line, _, err := out.wait(0, toolTimeout, p.exited, containsAll("metrics and health on http://"))
	if err != nil {
		t.Fatalf("imbot printed no banner: %v\n%s", err, out.String())
	}
	_, rest, _ := strings.Cut(line, "metrics and health on http://")
	b.httpAddr, _, _ = strings.Cut(rest, "/")
	for _, l := range out.Lines(0) {
		if _, rest, ok := strings.Cut(l, "web chat on http://"); ok {
			b.webAddr, _, _ = strings.Cut(rest, "/")
		}
	}
	if k != nil {
		if _, _, err := k.log.wait(mark, toolTimeout, p.exited, containsAll("IMBOT-REGISTER user=bot")); err != nil {
			t.Fatalf("imbot did not register: %v\n%s", err, out.String())
		}
	}
	deadline := time.Now().Add(toolTimeout)
	for {
		code, _ := httpGet("http://" + b.httpAddr + "/readyz")
		if code == http.StatusOK {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("imbot not ready (/readyz %d)\n%s", code, out.String())
		}
		select {
		case <-p.exited:
			t.Fatalf("imbot exited: %v\n%s", p.err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// signal stops the bot with sig and waits for it to exit.
func (b *imbotProc) signal(sig syscall.Signal) {
	b.t.Helper()
	if err := b.p.cmd.Process.Signal(sig); err != nil {
		b.t.Fatal(err)
	}
	select {
	case <-b.p.exited:
	case <-time.After(toolTimeout):
		b.t.Fatalf("imbot did not exit within %v of %v", toolTimeout, sig)
	}
	if sig == syscall.SIGTERM && b.p.err != nil {
		b.t.Errorf("imbot exited with %v after SIGTERM", b.p.err)
	}
}

func httpGet(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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

// chatter is one side of the helpdesk conversation, on a real client: it reads, in order,
// what its client printed as received from the bot.
type chatter struct {
	t    *testing.T
	name string
	out  *lineLog
	exit <-chan struct{}
	from int    // the next line of out to look at
	pre  string // the bot's address, which the client prints before a message from it
	say  func(text string)
}

// expect waits for the next message from the bot that contains want, skipping the others,
// and returns it.
func (c *chatter) expect(want string) string {
	c.t.Helper()
	line, idx, err := c.out.wait(c.from, toolTimeout, c.exit, func(l string) bool {
		i := strings.Index(l, c.pre)
		return i >= 0 && strings.Contains(l[i+len(c.pre):], want)
	})
	if err != nil {
		c.t.Fatalf("%s never got a message with %q: %v\n%s", c.name, want, err, strings.Join(c.out.Lines(c.from), "\n"))
	}
	c.from = idx + 1
	return line
}

// count counts the messages from the bot that contain text.
func (c *chatter) count(text string) int {
	n := 0
	for _, l := range c.out.Lines(0) {
		if i := strings.Index(l, c.pre); i >= 0 && strings.Contains(l[i+len(c.pre):], text) {
			n++
		}
	}
	return n
}

// linphoneChatter makes lp a chatter with the bot at botURI.
func linphoneChatter(t *testing.T, name string, lp *linphone, botURI string) *chatter {
	return &chatter{t: t, name: name, out: lp.out, exit: lp.p.exited, pre: botURI,
		say: func(text string) { lp.chat(botURI, text) }}
}

// baresipChatter makes bs a chatter with the bot at botURI, its current contact.
func baresipChatter(t *testing.T, name string, bs *baresip, botURI string) *chatter {
	return &chatter{t: t, name: name, out: bs.out, exit: bs.p.exited, pre: botURI, say: bs.message}
}

// helpdeskConfig writes the helpdesk example's config for a bot registered with k as bot,
// trusting k's assertions, with ivan and judy as technicians (an offer moves on after
// offerTimeout), and returns its path.
func helpdeskConfig(t *testing.T, k *kamailio, dir string, offerTimeout time.Duration, edit func(cfg map[string]any)) string {
	t.Helper()
	example := filepath.Join("..", "examples", "helpdesk")
	rules, err := os.ReadFile(filepath.Join(example, "helpdesk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Office hours all day, so that the handoff does not depend on when the test runs.
	hours := regexp.MustCompile(`hours: "[^"]*"`)
	if !hours.Match(rules) {
		t.Fatal("helpdesk.yaml has no hours: line to replace")
	}
	rules = hours.ReplaceAll(rules, []byte(`hours: "daily 00:00-12:00,12:00-00:00"`))
	if err := os.WriteFile(filepath.Join(dir, "helpdesk.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(example, "imbot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(src, &cfg); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	hp := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg["listen"] = []string{"udp://" + hp}
	cfg["identity"] = "sip:bot@127.0.0.1"
	cfg["outbound_proxy"] = k.uri("udp")
	cfg["registration"] = map[string]any{"registrar": k.uri("udp"), "username": botUser, "password_env": botPasswordEnv}
	cfg["trust"] = map[string]any{"proxies": []string{"127.0.0.1"}}
	cfg["rules"] = []string{"helpdesk.yaml"}
	cfg["store"] = map[string]any{"driver": "sqlite", "path": "helpdesk.db"}
	cfg["http"] = map[string]any{"listen": "127.0.0.1:0"}
	cfg["timeouts"] = map[string]any{"idle": "15m", "shutdown": "5s"}
	cfg["ratelimit"] = map[string]any{"every": "2s", "burst": 50}
	ho, ok := cfg["handoff"].(map[string]any)
	if !ok {
		t.Fatal("imbot.yaml has no handoff section")
	}
	ho["agents"] = []map[string]any{
		{"uri": "sip:ivan@127.0.0.1", "name": "Ivan", "max": 2},
		{"uri": "sip:judy@127.0.0.1", "name": "Judy", "max": 2},
	}
	ho["offer_timeout"] = offerTimeout.String()
	ho["answer_timeout"] = "2m"
	if edit != nil {
		edit(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "imbot.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHelpdeskRealClients: a customer on baresip asks for a person; the offer goes to the
// technician Ivan (linphonec), who ignores it, and moves on to Judy (linphonec) after the
// offer timeout; Judy accepts and they chat through the bot; Judy invites his supervisor
// Kate (linphonec), who joins the conversation. The bot is stopped with
// SIGTERM in the middle of the conversation, and later killed with SIGKILL: after each
// restart both sides are told once and go on chatting, nothing lost. Judy ends the chat,
// the customer rates it, and the rating is stored with Judy and the handoff's number.
// Everyone is told of each restart once and gets every line once.
// /metrics and /readyz answer throughout.
func TestHelpdeskRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Kamailio, baresip, two linphonec and the imbot binary")
	}
	k := startKamailio(t, kamOptions{})
	bin := imbotBinary(t)
	dir := t.TempDir()
	cfg := helpdeskConfig(t, k, dir, 3*time.Second, nil)
	b := startImbot(t, k, bin, cfg)

	const botURI = "sip:bot@127.0.0.1"
	ivan := linphoneChatter(t, "Ivan", startLinphone(t, k, "ivan", "ivanpw"), botURI)
	judy := linphoneChatter(t, "Judy", startLinphone(t, k, "judy", "judypw"), botURI)
	kate := linphoneChatter(t, "Kate", startLinphone(t, k, "kate", "katepw"), botURI)
	alice := baresipChatter(t, "Alice", startBaresip(t, k, "alice", "alicepw", `"Helpdesk" <`+botURI+`>`), botURI)

	alice.say("Hello")
	alice.expect("I am the Contoso IT helpdesk bot")
	alice.say("I want to talk to a person")
	alice.expect("I am handing you over to a technician.")
	alice.expect("Let me find a person to help you.")
	// Ivan gets the offer first and does nothing: after the offer timeout it goes to Judy.
	ivan.expect("#1 ")
	judy.expect("#1 ")
	judy.say("/accept")
	judy.expect("You are now talking with")
	alice.expect("Judy is now with you.")
	judy.say("Hello, Judy here. What is wrong?")
	alice.expect("Judy: Hello, Judy here. What is wrong?")
	alice.say("My screen stays black")
	judy.expect(": My screen stays black")

	// Judy invites his supervisor Kate into the conversation: she sees it from then on,
	// and what she writes reaches both.
	judy.say("/invite sip:kate@127.0.0.1")
	kate.expect("invited you to a conversation with")
	alice.expect("kate joined the conversation.")
	judy.expect("kate joined the conversation.")
	kate.say("Kate from the service desk, following along.")
	alice.expect("kate: Kate from the service desk, following along.")
	judy.expect("kate: Kate from the service desk, following along.")

	// SIGTERM in the middle of the chat: both sides are told, and the chat goes on.
	b.signal(syscall.SIGTERM)
	b = startImbot(t, k, bin, cfg)
	judy.expect("(The helpdesk restarted; your conversation #1 with")
	alice.expect("(The helpdesk restarted; your conversation #1 with Judy continues.)")
	kate.expect("restarted")
	judy.say("Is the power LED on?")
	alice.expect("Judy: Is the power LED on?")
	kate.expect("Judy: Is the power LED on?")
	alice.say("Yes, it is orange")
	judy.expect(": Yes, it is orange")
	kate.expect(": Yes, it is orange")

	// SIGKILL, as a crash: the same. (A line whose recipient got it but whose delivery the
	// bot had not yet recorded when it died would be sent again, as RoomDelivery says: the
	// bot is killed between lines, once every delivery is recorded.)
	waitDelivered(t, filepath.Join(dir, "helpdesk.db"))
	b.signal(syscall.SIGKILL)
	b = startImbot(t, k, bin, cfg)
	judy.expect("(The helpdesk restarted; your conversation #1 with")
	alice.expect("(The helpdesk restarted; your conversation #1 with Judy continues.)")
	kate.expect("restarted")
	alice.say("Now it is green and the screen works")
	judy.expect(": Now it is green and the screen works")
	kate.expect(": Now it is green and the screen works")
	judy.say("Great. Bye!")
	alice.expect("Judy: Great. Bye!")
	kate.expect("Judy: Great. Bye!")

	checkHelpdeskMetrics(t, b)
	judy.say("/done")
	judy.expect("Conversation #1 with")
	alice.expect("Judy has left the conversation.")
	alice.say("5")
	alice.expect("Thank you for your rating!")

	// Ivan, who let the offer pass, never got the conversation.
	for _, l := range ivan.out.Lines(ivan.from) {
		if strings.Contains(l, "screen") {
			t.Errorf("Ivan got a line of the chat: %s", l)
		}
	}
	// Each side was told of each restart once, and got every line once.
	for _, c := range []struct {
		who   *chatter
		lines []string // lines of the others'
	}{
		{alice, []string{"Is the power LED on?", "Great. Bye!"}},
		{judy, []string{"Yes, it is orange", "Now it is green"}},
		{kate, []string{"Is the power LED on?", "Yes, it is orange", "Now it is green", "Great. Bye!"}},
	} {
		if n := c.who.count("restarted"); n != 2 {
			t.Errorf("%s was told of a restart %d times, want 2 (once for each)", c.who.name, n)
		}
		for _, l := range c.lines {
			if n := c.who.count(l); n != 1 {
				t.Errorf("%s got %q %d times, want once", c.who.name, l, n)
			}
		}
	}
	b.signal(syscall.SIGTERM)

	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "helpdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ratings, err := db.Ratings(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ratings) != 1 || ratings[0].Score != 5 || ratings[0].Agent != "sip:judy@127.0.0.1" || ratings[0].HandoffID != 1 {
		t.Errorf("ratings %+v; want one 5 for sip:judy@127.0.0.1, handoff 1", ratings)
	}
}

// waitDelivered waits until the SQLite database at path holds rooms and no relayed line still
// to deliver.
func waitDelivered(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitRoomsDelivered(t, ctx, db, true)
}

// waitRoomsDelivered waits until st holds no relayed line still to deliver (and, with
// needRooms, at least one room): killing the bot then loses nothing in flight.
func waitRoomsDelivered(t *testing.T, ctx context.Context, st store.RoomStore, needRooms bool) {
	t.Helper()
	deadline := time.Now().Add(toolTimeout)
	for {
		rooms, err := st.Rooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending := 0
		for _, r := range rooms {
			ds, err := st.RoomDeliveries(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			pending += len(ds)
		}
		if (len(rooms) > 0 || !needRooms) && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms, %d lines still to deliver after %v", len(rooms), pending, toolTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling the database: nothing to wait on
	}
}

// checkHelpdeskMetrics checks /readyz and the handoff in /metrics.
func checkHelpdeskMetrics(t *testing.T, b *imbotProc) {
	t.Helper()
	if code, body := httpGet("http://" + b.httpAddr + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %s", code, body)
	}
	code, body := httpGet("http://" + b.httpAddr + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"imbot_registered 1", "imbot_messages_in_total", "imbot_sip_responses_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
