package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestKamailioDispatcher puts two bot instances behind Kamailio's dispatcher, as
// deploy/kamailio.cfg does: users write to sip:bot@127.0.0.1 at Kamailio and the dispatcher
// spreads their conversations over the instances by a hash of the From URI, each user's
// always to the same one. An instance that is not ready (Config.Health: its OPTIONS probe
// gets 503) gets nothing new once the dispatcher has seen it; one that stops without a word
// loses its users' next messages to the other instance (failover on timeout), and none is
// lost.
func TestKamailioDispatcher(t *testing.T) {
	var sick [2]atomic.Bool
	bots := make([]*testBot, 2)
	addrs := make([]string, 2)
	for i := range bots {
		bots[i] = startBotConfig(t, func(c *bot.Config) {
			c.Listen = []string{"udp://127.0.0.1:0"}
			c.Trust = bot.TrustConfig{Unverified: true}
			c.Health = func(context.Context) error {
				if sick[i].Load() {
					return errors.New("draining for maintenance")
				}
				return nil
			}
		})
		addrs[i] = bots[i].Addr("udp")
	}
	k := startKamailio(t, kamOptions{Dispatch: addrs})
	// Each instance answers its users at the request's source, Kamailio, which relays the
	// reply as addressed (and asks no password of the instances it dispatches to).
	waitProbed := func(want ...string) { t.Helper(); k.waitProbed(t, addrs, want...) }
	waitProbed("AP", "AP")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	users := make([]*bottest.Peer, 16)
	for i := range users {
		users[i] = bottest.NewPeer(t, bottest.Options{User: fmt.Sprintf("user%d", i), Bot: k.addr(), BotURI: "sip:bot@127.0.0.1"})
	}
	say := func(p *bottest.Peer, text string) {
		t.Helper()
		res, err := p.SendPage(ctx, text)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %q answered %v, %v", p.URI(), text, res, err)
		}
		if _, err := p.Wait(ctx, func(r bottest.Record) bool {
			return r.Kind == bottest.KindText && r.Text == echoText(text)
		}); err != nil {
			t.Fatalf("%s: no echo of %q: %v", p.URI(), text, err)
		}
	}
	// served returns which instance handled the user's message text.
	served := func(p *bottest.Peer, text string) int {
		t.Helper()
		for i, b := range bots {
			if countEvents(b, func(l string) bool { return strings.HasSuffix(l, ": "+text) && strings.HasPrefix(l, "message ") }) > 0 {
				return i
			}
		}
		t.Fatalf("no instance handled %q", text)
		return -1
	}

	// Spread, and affinity: each user's two messages go to the same instance.
	home := make([]int, len(users))
	var per [2]int
	for i, p := range users {
		say(p, fmt.Sprintf("first from %d", i))
		home[i] = served(p, fmt.Sprintf("first from %d", i))
		per[home[i]]++
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("the dispatcher sent every user to one instance: %v", per)
	}
	for i, p := range users {
		say(p, fmt.Sprintf("second from %d", i))
		if got := served(p, fmt.Sprintf("second from %d", i)); got != home[i] {
			t.Errorf("user %d moved from instance %d to %d", i, home[i], got)
		}
	}

	// Instance 0 says it is not ready: once probed, its users go to instance 1.
	sick[0].Store(true)
	waitProbed("IP", "AP")
	for i, p := range users {
		text := fmt.Sprintf("while 0 drains, from %d", i)
		say(p, text)
		if got := served(p, text); got != 1 {
			t.Errorf("user %d was served by instance %d while it was not ready", i, got)
		}
	}
	sick[0].Store(false)
	waitProbed("AP", "AP")

	// Instance 1 stops without a word: before the dispatcher notices, its users' messages
	// time out there and go to instance 0; after, they go there at once. Nothing is lost.
	bots[1].stop()
	for i, p := range users {
		text := fmt.Sprintf("after 1 stopped, from %d", i)
		say(p, text)
		if got := served(p, text); got != 0 {
			t.Errorf("user %d was served by instance %d, which is stopped", i, got)
		}
	}
	k.expect(0, "IMBOT-FAILOVER MESSAGE")
}

// waitProbed waits until the dispatcher holds instance addrs[i] in state want[i] ("AP":
// active, "IP": inactive; P: probed).
func (k *kamailio) waitProbed(t *testing.T, addrs []string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(toolTimeout)
	for {
		out, err := k.kamcmd("dispatcher.list")
		states := dispatcherStates(out)
		ok := err == nil
		for i, w := range want {
			ok = ok && states["sip:"+addrs[i]] == w
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher states %v, want %q for %q:\n%s (%v)", states, want, addrs, out, err)
		}
		time.Sleep(50 * time.Millisecond) // polling Kamailio: nothing to wait on
	}
}

// dispatcherStates returns the FLAGS of each destination in kamcmd's dispatcher.list, by
// URI, such as "AP" (active, probed) or "IP" (inactive).
func dispatcherStates(out string) map[string]string {
	states := map[string]string{}
	uri := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if _, v, ok := strings.Cut(l, "URI:"); ok {
			uri = strings.TrimSpace(v)
		}
		if _, v, ok := strings.Cut(l, "FLAGS:"); ok && uri != "" {
			states[uri] = strings.TrimSpace(v)
		}
	}
	return states
}

// TestDeployKamailioConfig checks that deploy/kamailio/kamailio.cfg, the documented front of
// several instances, is a configuration Kamailio accepts (kamailio -c), with its dispatcher
// list at a path of the test's.
func TestDeployKamailioConfig(t *testing.T) {
	bin := requireTool(t, "kamailio", "kamailio")
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join("..", "deploy", "kamailio", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(filepath.Join("..", "deploy", "kamailio", "dispatcher.list"))
	if err != nil {
		t.Fatal(err)
	}
	listPath := filepath.Join(dir, "dispatcher.list")
	if err := os.WriteFile(listPath, list, 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "/etc/kamailio/dispatcher.list") {
		t.Fatal("deploy/kamailio/kamailio.cfg does not name /etc/kamailio/dispatcher.list")
	}
	cfg = []byte(strings.ReplaceAll(string(cfg), "/etc/kamailio/dispatcher.list", listPath))
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-c", "-f", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("kamailio -c refuses deploy/kamailio/kamailio.cfg: %v\n%s", err, out)
	}
}
