package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store"
	"github.com/imbot-dev/imbot/store/postgres"
	"github.com/imbot-dev/imbot/store/postgres/pgtest"
)

// TestClusterFailover runs the deployment of deploy/: Kamailio's dispatcher in front of two
// imbot processes that share a PostgreSQL database (started by the test, as the Kamailio tests
// start their own Kamailio). Users begin a two-step rule flow through Kamailio, spread over
// both instances; the instance of the first user is killed with SIGKILL; the users' next
// messages reach the other instance (failover, then the dispatcher's probe) and their flows go
// on there. The database's transcripts hold each user's two messages once each.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, Kamailio and two imbot processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startCluster(t)
	dsn, k, bots := c.dsn, c.k, c.bots

	users := make([]*bottest.Peer, 8)
	for i := range users {
		users[i] = bottest.NewPeer(t, bottest.Options{User: fmt.Sprintf("user%d", i), Bot: k.addr(), BotURI: "sip:bot@127.0.0.1"})
	}
	say := func(p *bottest.Peer, text, want string) {
		t.Helper()
		if res, err := p.SendPage(ctx, text); err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %q answered %v, %v", p.URI(), text, res, err)
		}
		if _, err := p.Wait(ctx, func(r bottest.Record) bool { return r.Kind == bottest.KindText && r.Text == want }); err != nil {
			t.Fatalf("%s: %q got no %q: %v (got %q)", p.URI(), text, want, err, p.Texts())
		}
	}
	// servedBy returns the instance whose log has the user's message event.
	// (The line is written when the handler returns, just after the reply left.)
	servedBy := func(p *bottest.Peer) int {
		t.Helper()
		user, _, _ := strings.Cut(strings.TrimPrefix(p.URI(), "sip:"), "@")
		deadline := time.Now().Add(toolTimeout)
		for time.Now().Before(deadline) {
			for i, b := range bots {
				for _, l := range b.out.Lines(0) {
					if strings.Contains(l, "msg=event") && strings.Contains(l, "kind=message") && strings.Contains(l, "peer=sip:"+user+"@") {
						return i
					}
				}
			}
			time.Sleep(10 * time.Millisecond) // polling two logs: nothing to wait on
		}
		t.Fatalf("no instance logged a message of %s", p.URI())
		return -1
	}
	per := [2]int{}
	home := make([]int, len(users))
	for i, p := range users {
		say(p, "order tea", "One tea. What size?")
		home[i] = servedBy(p)
		per[home[i]]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("the dispatcher sent every user to one instance: %v", per)
	}

	dead := home[0]
	bots[dead].signal(syscall.SIGKILL)
	for _, p := range users {
		say(p, "large", "One large tea, coming up.")
	}
	k.expect(0, "IMBOT-FAILOVER MESSAGE")

	// Each user's two messages are in the shared transcript once each.
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range users {
		key := "sip:bot@127.0.0.1 " + strings.Split(p.URI(), ";")[0] + " unverified"
		in, _ := transcriptTexts(t, ctx, db, key)
		if strings.Join(in, "|") != "order tea|large" {
			t.Errorf("%s: messages in the transcript %q, want each of \"order tea\" and \"large\" once", key, in)
		}
	}
}

// cluster is the deployment of deploy/ on loopback: a PostgreSQL server started for the test,
// Kamailio's dispatcher, and two imbot processes (udp://addrs[i]) that share a database and
// follow imbotcmd/testdata/cluster_rules.yaml.
type cluster struct {
	dsn   string
	k     *kamailio
	addrs []string
	bots  []*imbotProc
}

// startCluster starts the cluster and waits until the dispatcher holds both instances as
// active (its OPTIONS probes answered).
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := pgtest.New(t).Database(t)
	t.Setenv("IMBOT_TEST_PG_DSN", dsn)
	bin := imbotBinary(t)
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join("..", "imbotcmd", "testdata", "cluster_rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cluster{dsn: dsn, addrs: []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}}
	c.k = startKamailio(t, kamOptions{Dispatch: c.addrs})
	for i, addr := range c.addrs {
		cfg := filepath.Join(dir, fmt.Sprintf("imbot-%d.yaml", i))
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: ["udp://%s"]
identity: sip:bot@127.0.0.1
outbound_proxy: %s
trust: {proxies: [127.0.0.1]}
rules: [rules.yaml]
store: {driver: postgres, dsn_env: IMBOT_TEST_PG_DSN}
http: {listen: "127.0.0.1:0"}
log: {level: info}
`, addr, c.k.uri("udp"))), 0o644); err != nil {
			t.Fatal(err)
		}
		c.bots = append(c.bots, startImbot(t, nil, bin, cfg))
	}
	c.k.waitProbed(t, c.addrs, "AP", "AP")
	return c
}

// transcriptTexts returns the texts of the conversation key's transcript in the database,
// what the user wrote (in) and what it was answered (out), in order.
func transcriptTexts(t *testing.T, ctx context.Context, db *postgres.DB, key string) (in, out []string) {
	t.Helper()
	entries, err := db.Transcript(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Direction == store.In {
			in = append(in, e.Text)
		} else {
			out = append(out, e.Text)
		}
	}
	return in, out
}

// metric returns the sum of the samples of the counter name (all label sets) in the
// instance's /metrics.
func (b *imbotProc) metric(name string) float64 {
	b.t.Helper()
	code, body := httpGet("http://" + b.httpAddr + "/metrics")
	if code != 200 {
		b.t.Fatalf("/metrics of the instance at %s: %d %s", b.httpAddr, code, body)
	}
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			b.t.Fatalf("/metrics line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// sippStat returns the cumulative column of a line of sipp's final statistics (such as
// "Successful call"), -1 when sipp printed none.
func sippStat(out, label string) int {
	n := -1
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "|")
		if len(f) >= 3 && strings.Contains(f[0], label) {
			if v, err := strconv.Atoi(strings.TrimSpace(f[2])); err == nil {
				n = v
			}
		}
	}
	return n
}

// TestClusterRealClients runs the cluster of TestClusterFailover with real clients, as issue
// 12 asks: sipp sends page-mode load through the dispatcher, each call from a new user, and
// the load spreads over both instances (their /metrics), every call completed and every
// message handled once; alice, on baresip registered with Kamailio, holds a conversation with
// the bot through the dispatcher, and the instance that serves her is killed with SIGKILL
// between two of her messages: her next messages are answered by the other instance, which
// goes on with her rule flow from the state in PostgreSQL. Each of her messages that Kamailio
// answered 2xx is in the database's transcript exactly once.
func TestClusterRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, Kamailio, two imbot processes, sipp and baresip")
	}
	requireTool(t, "sipp", "sip-tester")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCluster(t)
	k, bots := c.k, c.bots

	const botURI = "sip:bot@127.0.0.1"
	alice := baresipChatter(t, "alice", startBaresip(t, k, "alice", "alicepw", `"Bot" <`+botURI+`>`), botURI)
	// served waits until the instances together logged n handled messages of alice's (the
	// line is written when the handler returns: reply sent, state and transcript stored),
	// and returns the instance that logged the n-th. Call it after each message, in order.
	aliceLine := containsAll("msg=event", "kind=message", "peer=sip:alice@127.0.0.1 ")
	var seen [2]int // alice's messages each instance had logged at the last call
	served := func(n int) int {
		t.Helper()
		deadline := time.Now().Add(toolTimeout)
		for {
			var per [2]int
			for i, b := range bots {
				for _, l := range b.out.Lines(0) {
					if aliceLine(l) {
						per[i]++
					}
				}
			}
			switch {
			case per[0]+per[1] > n:
				t.Fatalf("the instances handled %d messages of alice's (%v per instance), want %d", per[0]+per[1], per, n)
			case per[0]+per[1] == n:
				last := 0
				if per[1] > seen[1] {
					last = 1
				}
				seen = per
				return last
			case time.Now().After(deadline):
				t.Fatalf("the instances handled %d messages of alice's (%v per instance) within %v, want %d", per[0]+per[1], per, toolTimeout, n)
			}
			time.Sleep(10 * time.Millisecond) // polling two logs: nothing to wait on
		}
	}
	talk := func(n int, text, want string) int {
		t.Helper()
		alice.say(text)
		alice.expect(want)
		return served(n)
	}

	// Alice begins her flow.
	home := talk(1, "order tea", "One tea. What size?")
	t.Logf("alice is served by instance %d (%s)", home, c.addrs[home])

	// Page-mode load from many users: spread over both instances, each message handled once.
	var in0, out0 [2]float64
	for i, b := range bots {
		in0[i], out0[i] = b.metric("imbot_messages_in_total"), b.metric("imbot_messages_out_total")
	}
	const calls, rate = 200, 50
	res := runSipp(t, sippRun{
		Scenario:  "cluster_page.xml",
		OOC:       "cluster_page_reply.xml",
		Transport: "udp",
		Target:    k.addr(),
		Extra:     []string{"-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-l", "100", "-timeout", "60s"},
	})
	ok, failed := sippStat(res.Output, "Successful call"), sippStat(res.Output, "Failed call")
	t.Logf("sipp: %d calls at %d/s through the dispatcher in %v: %d successful, %d failed (exit code %d)",
		calls, rate, res.Elapsed.Round(time.Millisecond), ok, failed, res.ExitCode)
	if res.ExitCode != 0 || ok != calls || failed != 0 {
		t.Logf("sipp output:\n%s", res.Output)
		t.Logf("sipp <log> trace:\n%s", res.Logs)
		t.Logf("sipp error trace:\n%s", res.Errors)
		t.Fatalf("sipp: exit code %d, %d of %d calls successful, %d failed; want every call successful", res.ExitCode, ok, calls, failed)
	}
	// A reply counts once its 200 is in, which may be just after sipp exited: wait until the
	// counters reach the calls (more would be messages handled twice).
	var per [2]int
	var replies int
	for deadline := time.Now().Add(toolTimeout); ; {
		replies = 0
		for i, b := range bots {
			per[i] = int(b.metric("imbot_messages_in_total") - in0[i])
			replies += int(b.metric("imbot_messages_out_total") - out0[i])
		}
		if per[0]+per[1] >= calls && replies >= calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling /metrics: nothing to wait on
	}
	t.Logf("messages handled per instance: %v; replies accepted: %d", per, replies)
	if per[0]+per[1] != calls || replies != calls {
		t.Errorf("the instances handled %d messages (%v) and sent %d replies, want %d of each (each call's message once)", per[0]+per[1], per, replies, calls)
	}
	for i, n := range per {
		if n < calls/5 {
			t.Errorf("instance %d handled %d of the %d calls' messages (%v): want at least a fifth on each", i, n, calls, per)
		}
	}

	// The instance that serves alice dies between two of her messages (the last one
	// answered and handled); the other goes on with her flow.
	mark := k.log.Len()
	bots[home].signal(syscall.SIGKILL)
	other := 1 - home
	for n, m := range []struct{ text, want string }{
		{"large", "One large tea, coming up."},
		{"order coffee", "One coffee. What size?"},
		{"small", "One small coffee, coming up."},
	} {
		if got := talk(n+2, m.text, m.want); got != other {
			t.Errorf("alice's %q was handled by instance %d, which was killed", m.text, got)
		}
	}
	if line, _, err := k.log.wait(mark, 0, nil, containsAll("IMBOT-FAILOVER MESSAGE", "from=sip:alice@")); err == nil {
		t.Logf("kamailio: %s", line)
	} else {
		t.Logf("alice's next message went to instance %d at once: the dispatcher's probe had taken instance %d out", other, home)
	}

	// Kamailio answered each of alice's messages 2xx (her MESSAGEs are told apart by
	// CSeq and Call-ID, in the prefix of Kamailio's log lines), and each of them is in the
	// transcript once: none lost, none handled twice.
	lines := k.log.Lines(0)
	var sent []string
	for _, l := range lines {
		if strings.Contains(l, "IMBOT-DISPATCH MESSAGE from=sip:alice@127.0.0.1") {
			sent = append(sent, txnOf(l))
		}
	}
	if len(sent) != 4 {
		t.Errorf("kamailio dispatched %d MESSAGEs of alice's (%q), want 4", len(sent), sent)
	}
	for _, txn := range sent {
		answered := false
		for _, l := range lines {
			if strings.Contains(l, "IMBOT-REPLY 2") && txnOf(l) == txn {
				answered = true
			}
		}
		if !answered {
			t.Errorf("alice's MESSAGE %q was not answered 2xx", txn)
		}
	}
	db, err := postgres.Open(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := botURI + " sip:alice@127.0.0.1"
	in, out := transcriptTexts(t, ctx, db, key)
	if want := "order tea|large|order coffee|small"; strings.Join(in, "|") != want {
		t.Errorf("%s: alice's messages in the transcript %q, want each of %q once", key, in, strings.Split(want, "|"))
	}
	if want := "One tea. What size?|One large tea, coming up.|One coffee. What size?|One small coffee, coming up."; strings.Join(out, "|") != want {
		t.Errorf("%s: the bot's replies in the transcript %q, want %q", key, out, strings.Split(want, "|"))
	}
	for _, r := range out {
		if n := alice.count(r); n != 1 {
			t.Errorf("alice got %q %d times, want once", r, n)
		}
	}
	// Each sipp user's message is in the transcript once too.
	for n := 1; n <= calls; n++ {
		key := fmt.Sprintf("%s sip:user%d@127.0.0.1:%d unverified", botURI, n, res.Port)
		in, _ := transcriptTexts(t, ctx, db, key)
		if len(in) != 1 || in[0] != "order tea" {
			t.Errorf("%s: messages in the transcript %q, want \"order tea\" once", key, in)
		}
	}
}

// txnOf returns the CSeq and Call-ID in the prefix of a Kamailio log line ("{1 2 MESSAGE
// <Call-ID>}"): the same for a request and its replies.
func txnOf(line string) string {
	_, rest, _ := strings.Cut(line, "{")
	prefix, _, _ := strings.Cut(rest, "}")
	f := strings.Fields(prefix)
	if len(f) < 4 {
		return ""
	}
	return strings.Join(f[1:], " ")
}

// TestClusterSessionFailover: an IM session stays on the instance that accepted it (Kamailio
// record-routes the INVITE); when that instance dies, the next message in the session gets
// 481 from Kamailio (no answer within 2 s: the session is gone), and the client's next
// session, dispatched to the other instance, goes on with the conversation's rule flow from
// PostgreSQL. The message answered 481 was not handled; the shared transcript holds each
// message answered 2xx once.
func TestClusterSessionFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, Kamailio and two imbot processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startCluster(t)
	p := bottest.NewPeer(t, bottest.Options{User: "sam", Bot: c.k.addr(), BotURI: "sip:bot@127.0.0.1"})
	s, err := p.OpenSession(ctx, bottest.DialectIETF)
	if err != nil {
		t.Fatalf("the session was not opened through the dispatcher: %v", err)
	}
	send := func(s *bottest.Session, text string) int {
		t.Helper()
		res, err := s.Send(ctx, text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		return res.StatusCode
	}
	if code := send(s, "order tea"); code != 200 {
		t.Fatalf("order tea answered %d", code)
	}
	if _, err := s.WaitText(ctx, "One tea. What size?"); err != nil {
		t.Fatalf("no answer in the session: %v (got %q)", err, p.Texts())
	}
	// The instance that took the INVITE serves the session.
	home := -1
	for _, l := range c.k.log.Lines(0) {
		if _, to, ok := strings.Cut(l, "IMBOT-DISPATCH INVITE from=sip:sam@"); ok {
			for i, a := range c.addrs {
				if strings.Contains(to, "to=sip:"+a) {
					home = i
				}
			}
		}
	}
	if home < 0 {
		t.Fatal("Kamailio dispatched no INVITE of sam")
	}
	c.bots[home].signal(syscall.SIGKILL)
	t0 := time.Now()
	if code := send(s, "large"); code != 481 {
		t.Fatalf("a message in the session of a dead instance answered %d, want 481", code)
	}
	c.k.expect(0, "IMBOT-DIALOGLOST MESSAGE")

	// A new session: the other instance, the same flow.
	s2, err := p.OpenSession(ctx, bottest.DialectIETF)
	if err != nil {
		t.Fatalf("the second session was not opened: %v", err)
	}
	if code := send(s2, "large"); code != 200 {
		t.Fatalf("large answered %d in the new session", code)
	}
	t.Logf("from the kill to the flow going on in a new session: %v", time.Since(t0))
	if _, err := s2.WaitText(ctx, "One large tea, coming up."); err != nil {
		t.Fatalf("the flow did not go on in the new session: %v (got %q)", err, p.Texts())
	}

	db, err := postgres.Open(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := "sip:bot@127.0.0.1 " + strings.Split(p.URI(), ";")[0] + " unverified"
	if in, _ := transcriptTexts(t, ctx, db, key); strings.Join(in, "|") != "order tea|large" {
		t.Errorf("%s: messages in the transcript %q, want \"order tea\" and \"large\" once each", key, in)
	}
}
