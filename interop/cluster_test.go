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
	srv := pgtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn, err := srv.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	k := startKamailio(t, kamOptions{Dispatch: addrs})
	bots := make([]*imbotProc, 2)
	for i, addr := range addrs {
		cfg := filepath.Join(dir, fmt.Sprintf("imbot-%d.yaml", i))
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: ["udp://%s"]
identity: sip:bot@127.0.0.1
outbound_proxy: %s
trust: {proxies: [127.0.0.1]}
rules: [rules.yaml]
store: {driver: postgres, dsn_env: IMBOT_TEST_PG_DSN}
http: {listen: "127.0.0.1:0"}
log: {level: info}
`, addr, k.uri("udp"))), 0o644); err != nil {
			t.Fatal(err)
		}
		bots[i] = startImbot(t, nil, bin, cfg)
	}

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
		entries, err := db.Transcript(ctx, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		var in []string
		for _, e := range entries {
			if e.Direction == store.In {
				in = append(in, e.Text)
			}
		}
		if strings.Join(in, "|") != "order tea|large" {
			t.Errorf("%s: messages in the transcript %q, want each of \"order tea\" and \"large\" once", key, in)
		}
	}
}
