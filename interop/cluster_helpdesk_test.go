package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
	"github.com/imbot-dev/imbot/store/postgres"
	"github.com/imbot-dev/imbot/store/postgres/pgtest"
)

// TestClusterHelpdesk runs the helpdesk on two imbot instances behind Kamailio's dispatcher,
// sharing a PostgreSQL database, with real clients: a customer on baresip and a technician on
// linphonec whom the dispatcher sends to different instances. One instance leads the
// helpdesk (handlers.Leader); the other forwards it the messages of the handoff. The customer
// asks for a person, the technician accepts, and they chat across the two instances; the
// technician invites a supervisor (linphonec) into the room. The leader is killed with
// SIGKILL: the other instance takes the lead, restores the room from the database, tells
// everyone once, and the chat goes on; the killed instance comes back as a follower, and
// is killed again, which the chat does not notice. Every line reaches each of the others
// exactly once.
func TestClusterHelpdesk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, Kamailio, baresip, two linphonec and two imbot processes")
	}
	srv := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := srv.Database(t)
	t.Setenv("IMBOT_TEST_PG_DSN", dsn)
	bin := imbotBinary(t)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	k := startKamailio(t, kamOptions{Dispatch: addrs})
	cfgs := make([]string, 2)
	for i, addr := range addrs {
		dir := filepath.Join(t.TempDir(), fmt.Sprint("instance", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfgs[i] = helpdeskConfig(t, k, dir, time.Minute, func(cfg map[string]any) {
			cfg["listen"] = []string{"udp://" + addr}
			delete(cfg, "registration") // the dispatcher knows the instances
			delete(cfg, "access")       // visitors who did not sign in too
			cfg["store"] = map[string]any{"driver": "postgres", "dsn_env": "IMBOT_TEST_PG_DSN"}
			cfg["cluster"] = map[string]any{"lease": "2s"}
			cfg["log"] = map[string]any{"level": "debug"}
			ho := cfg["handoff"].(map[string]any)
			ho["agents"] = []map[string]any{{"uri": "sip:judy@127.0.0.1", "name": "Judy", "max": 2}}
		})
	}
	bots := make([]*imbotProc, 2)
	// The first instance leads: it is up before the second one tries.
	bots[0] = startImbot(t, nil, bin, cfgs[0])
	if _, _, err := bots[0].out.wait(0, toolTimeout, bots[0].p.exited, containsAll("this instance leads the helpdesk")); err != nil {
		t.Fatalf("the first instance did not take the lead: %v", err)
	}
	bots[1] = startImbot(t, nil, bin, cfgs[1])
	if _, _, err := bots[1].out.wait(0, toolTimeout, bots[1].p.exited, containsAll("the helpdesk is led by another instance")); err != nil {
		t.Fatalf("the second instance did not follow the first: %v", err)
	}

	const botURI = "sip:bot@127.0.0.1"
	judy := linphoneChatter(t, "Judy", startLinphone(t, k, "judy", "judypw"), botURI)
	kate := linphoneChatter(t, "Kate", startLinphone(t, k, "kate", "katepw"), botURI)
	alice := baresipChatter(t, "Alice", startBaresip(t, k, "alice", "alicepw", `"Helpdesk" <`+botURI+`>`), botURI)

	// instanceOf returns the instance the dispatcher sent user's last request to.
	instanceOf := func(user string) int {
		t.Helper()
		var to string
		for _, l := range k.log.Lines(0) {
			if strings.Contains(l, "IMBOT-DISPATCH MESSAGE from=sip:"+user+"@") {
				_, to, _ = strings.Cut(l, " to=")
			}
		}
		for i, a := range addrs {
			if strings.Contains(to, a) {
				return i
			}
		}
		t.Fatalf("Kamailio dispatched no MESSAGE of %s", user)
		return -1
	}

	alice.say("Hello")
	alice.expect("I am the Contoso IT helpdesk bot")
	alice.say("I want to talk to a person")
	alice.expect("Let me find a person to help you.")
	judy.expect("#1 ")
	judy.say("/accept")
	judy.expect("You are now talking with")
	alice.expect("Judy is now with you.")
	home := map[string]int{"alice": instanceOf("alice"), "judy": instanceOf("judy")}
	t.Logf("the dispatcher sends alice to instance %d and judy to instance %d", home["alice"], home["judy"])
	if home["alice"] == home["judy"] {
		t.Fatalf("the dispatcher sent alice and judy to the same instance (%d): the test needs them apart", home["alice"])
	}
	judy.say("Hello, Judy here. What is wrong?")
	alice.expect("Judy: Hello, Judy here. What is wrong?")
	alice.say("My screen stays black")
	judy.expect(": My screen stays black")
	judy.say("/invite sip:kate@127.0.0.1")
	kate.expect("invited you to a conversation with")
	alice.expect("kate joined the conversation.")
	kate.say("Kate from the service desk, following along.")
	alice.expect("kate: Kate from the service desk, following along.")
	judy.expect("kate: Kate from the service desk, following along.")
	home["kate"] = instanceOf("kate")

	// A visitor whom the dispatcher sends to the follower asks for a person: the follower's
	// rule answers, and hands the handoff to the leader, which offers it to Judy (#2). She
	// passes.
	var visitor *bottest.Peer
	for i := 0; visitor == nil; i++ {
		if i == 16 {
			t.Fatal("none of 16 visitors was sent to the follower")
		}
		p := bottest.NewPeer(t, bottest.Options{User: fmt.Sprint("visitor", i), Bot: k.addr(), BotURI: botURI})
		if res, err := p.SendPage(ctx, "Hello"); err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: Hello answered %v, %v", p.URI(), res, err)
		}
		if _, err := p.Wait(ctx, func(r bottest.Record) bool { return r.Kind == bottest.KindText }); err != nil {
			t.Fatalf("%s: no answer to Hello: %v", p.URI(), err)
		}
		if instanceOf(fmt.Sprint("visitor", i)) == 1 {
			visitor = p
		}
	}
	if res, err := visitor.SendPage(ctx, "I want to talk to a person"); err != nil || res.StatusCode != 200 {
		t.Fatalf("answered %v, %v", res, err)
	}
	if _, err := visitor.Wait(ctx, func(r bottest.Record) bool { return strings.Contains(r.Text, "Let me find a person to help you.") }); err != nil {
		t.Fatalf("the leader did not take the visitor's handoff: %v (got %q)", err, visitor.Texts())
	}
	if _, _, ch := bots[1].out.find(0, containsAll("message forwarded to the leader", "intent=handoff")); ch != nil {
		t.Fatalf("the follower did not hand the handoff to the leader")
	}
	judy.expect("#2 ")
	judy.say("/pass 2")
	if _, err := visitor.Wait(ctx, func(r bottest.Record) bool { return strings.Contains(r.Text, "nobody is available") }); err != nil {
		t.Fatalf("the visitor was not told that nobody took it: %v (got %q)", err, visitor.Texts())
	}
	// The follower forwarded the messages of whoever it serves.
	follower := 1
	if _, _, ch := bots[follower].out.find(0, containsAll("message forwarded to the leader")); ch != nil {
		t.Fatalf("the follower forwarded nothing to the leader")
	}

	// The leader dies: the follower takes the lead, restores the room, and everyone is told.
	waitDeliveredPG(t, ctx, dsn)
	bots[0].signal(syscall.SIGKILL)
	if _, _, err := bots[1].out.wait(0, toolTimeout, bots[1].p.exited, containsAll("this instance leads the helpdesk")); err != nil {
		t.Fatalf("the second instance did not take the lead: %v", err)
	}
	judy.expect("(The helpdesk restarted; your conversation #1 with")
	alice.expect("(The helpdesk restarted; your conversation #1 with Judy continues.)")
	kate.expect("restarted")
	judy.say("Is the power LED on?")
	alice.expect("Judy: Is the power LED on?")
	kate.expect("Judy: Is the power LED on?")
	alice.say("Yes, it is orange")
	judy.expect(": Yes, it is orange")
	kate.expect(": Yes, it is orange")

	// The killed instance comes back, now a follower; it dies again, and nobody notices but
	// the dispatcher.
	bots[0] = startImbot(t, nil, bin, cfgs[0])
	if _, _, err := bots[0].out.wait(0, toolTimeout, bots[0].p.exited, containsAll("the helpdesk is led by another instance")); err != nil {
		t.Fatalf("the restarted instance did not follow: %v", err)
	}
	k.waitProbed(t, addrs, "AP", "AP")
	alice.say("Now it is green and the screen works")
	judy.expect(": Now it is green and the screen works")
	kate.expect(": Now it is green and the screen works")
	judy.say("Great, thanks Kate")
	alice.expect("Judy: Great, thanks Kate")
	kate.expect("Judy: Great, thanks Kate")
	waitDeliveredPG(t, ctx, dsn)
	bots[0].signal(syscall.SIGKILL)
	kate.say("You are welcome.")
	alice.expect("kate: You are welcome.")
	judy.expect("kate: You are welcome.")
	judy.say("Bye!")
	alice.expect("Judy: Bye!")
	kate.expect("Judy: Bye!")

	for _, c := range []struct {
		who   *chatter
		lines []string // lines of the others'
	}{
		{alice, []string{"Hello, Judy here", "Kate from the service desk", "Is the power LED on?", "Great, thanks Kate", "You are welcome.", "Bye!"}},
		{judy, []string{"My screen stays black", "Kate from the service desk", "Yes, it is orange", "Now it is green", "You are welcome."}},
		{kate, []string{"Is the power LED on?", "Yes, it is orange", "Now it is green", "Great, thanks Kate", "Bye!"}},
	} {
		if n := c.who.count("restarted"); n != 1 {
			t.Errorf("%s was told of a restart %d times, want once (the leader's death)", c.who.name, n)
		}
		for _, l := range c.lines {
			if n := c.who.count(l); n != 1 {
				t.Errorf("%s got %q %d times, want once", c.who.name, l, n)
			}
		}
	}

	// The killed instance comes back once more, a follower. Judy ends the conversation, and
	// Alice, whom the dispatcher sends to that follower again, rates it: the follower
	// forwards the rating to the leader, which knows whose handoff it rates.
	bots[0] = startImbot(t, nil, bin, cfgs[0])
	k.waitProbed(t, addrs, "AP", "AP")
	judy.say("/done")
	judy.expect("Conversation #1 with")
	alice.expect("Judy has left the conversation.")
	alice.say("5")
	alice.expect("Thank you for your rating!")
	if i := instanceOf("alice"); i != 0 {
		t.Errorf("the dispatcher sent alice's rating to instance %d, want the follower 0", i)
	}
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ratings, err := db.Ratings(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ratings) != 1 || ratings[0].Score != 5 || ratings[0].Agent != "sip:judy@127.0.0.1" || ratings[0].HandoffID != 1 {
		t.Errorf("ratings %+v; want one 5 for sip:judy@127.0.0.1, handoff 1", ratings)
	}

	// A caller in an IM session with the follower (now instance 0) asks for a person; Judy
	// takes it; the caller hangs up: the follower forwards the BYE's news, and the leader
	// tells Judy.
	var caller *bottest.Peer
	var session *bottest.Session
	for i := 0; caller == nil; i++ {
		if i == 16 {
			t.Fatal("none of 16 callers was sent to the follower")
		}
		user := fmt.Sprint("caller", i)
		p := bottest.NewPeer(t, bottest.Options{User: user, Bot: k.addr(), BotURI: botURI})
		s, err := p.OpenSession(ctx, bottest.DialectIETF)
		if err != nil {
			t.Fatalf("%s: no session: %v", user, err)
		}
		to := ""
		for _, l := range k.log.Lines(0) {
			if _, rest, ok := strings.Cut(l, "IMBOT-DISPATCH INVITE from=sip:"+user+"@"); ok {
				_, to, _ = strings.Cut(rest, " to=")
			}
		}
		if strings.Contains(to, addrs[0]) {
			caller, session = p, s
		} else if err := s.Bye(ctx); err != nil {
			t.Fatalf("%s: BYE: %v", user, err)
		}
	}
	if res, err := session.Send(ctx, "I want to talk to a person"); err != nil || res.StatusCode != 200 {
		t.Fatalf("answered %v, %v", res, err)
	}
	if _, err := caller.Wait(ctx, func(r bottest.Record) bool { return strings.Contains(r.Text, "Let me find a person to help you.") }); err != nil {
		t.Fatalf("the leader did not take the caller's handoff: %v (got %q)", err, caller.Texts())
	}
	judy.expect("#3 ")
	judy.say("/accept 3")
	judy.expect("You are now talking with")
	if err := session.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	if l := judy.expect("left the conversation."); !strings.Contains(l, "#3 ") {
		t.Errorf("Judy was told %q, want that #3 left", l)
	}
	if _, _, ch := bots[0].out.find(0, containsAll("message forwarded to the leader", "intent=left")); ch != nil {
		t.Errorf("the follower did not forward the caller's BYE")
	}
	t.Logf("homes: %v", home)
}

// waitDeliveredPG waits until the database at dsn holds no relayed line still to deliver:
// killing an instance then loses nothing in flight.
func waitDeliveredPG(t *testing.T, ctx context.Context, dsn string) {
	t.Helper()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitRoomsDelivered(t, ctx, db, false)
}
