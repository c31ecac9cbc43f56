package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imbot-dev/imbot/bot"
)

// This file drives baresip 1.0 (PROTOCOL.md 3.2) as a user's client registered with
// Kamailio: commands go to its stdin (the stdio and menu modules), and what it prints on
// stdout (registrations, received messages) is scraped.

// baresip is a running baresip with its own configuration directory.
type baresip struct {
	t    *testing.T
	p    *proc
	out  *lineLog
	port int
}

// baresipModuleDirs are where Debian (and a source install) put baresip's modules.
var baresipModuleDirs = []string{"/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"}

// freePortPlusOne returns a free port whose successor is free too: baresip also listens for
// TLS on the SIP port + 1, whatever its config says.
func freePortPlusOne(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := freePort(t)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port pair for baresip")
	return 0
}

// startBaresip starts baresip registered with k as user (password pw), with contacts as
// its contact list (the first one is the current contact, the target of /message), and
// waits until it is registered. It is killed when the test ends.
func startBaresip(t *testing.T, k *kamailio, user, pw string, contacts ...string) *baresip {
	t.Helper()
	bin := requireTool(t, "baresip", "baresip")
	modDir := ""
	for _, d := range baresipModuleDirs {
		if _, err := os.Stat(filepath.Join(d, "menu.so")); err == nil {
			modDir = d
			break
		}
	}
	if modDir == "" {
		t.Fatalf("baresip's modules (menu.so) not found in %v", baresipModuleDirs)
	}
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		port := freePortPlusOne(t)
		// net_interface must be an address: "lo" fails ("could not get network address").
		// No ctrl_tcp: stdin is enough, and incoming messages are not ctrl_tcp events anyway.
		config := strings.Join([]string{
			"sip_listen 127.0.0.1:" + strconv.Itoa(port),
			"net_interface 127.0.0.1",
			"module_path " + modDir,
			"module stdio.so",
			"module g711.so",
			"module_app account.so",
			"module_app contact.so",
			"module_app menu.so",
			"audio_player aufile,/dev/null",
			"audio_source aufile,/dev/null",
			"",
		}, "\n")
		// The address of record has no port; requests go to Kamailio as outbound proxy.
		account := fmt.Sprintf("<sip:%s@127.0.0.1>;auth_user=%s;auth_pass=%s;outbound=\"sip:%s\";regint=300\n",
			user, user, pw, k.addr())
		var cl strings.Builder
		for _, c := range contacts {
			fmt.Fprintf(&cl, "%s\n", c)
		}
		for name, data := range map[string]string{"config": config, "accounts": account, "contacts": cl.String()} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out := &lineLog{}
		// stdin is a pipe that stays open: with /dev/null, stdio.so fails to poll it.
		p, err := startProc("baresip", dir, nil, out, bin, "-f", dir)
		if err != nil {
			t.Fatal(err)
		}
		bs := &baresip{t: t, p: p, out: out, port: port}
		t.Cleanup(func() {
			// SIGTERM makes baresip unregister and wait for the answer; a test client
			// need not: kill it.
			p.stop(syscall.SIGKILL, 0)
			if t.Failed() {
				t.Logf("baresip (%s) output:\n%s", user, out.String())
			}
		})
		_, _, err = out.wait(0, toolTimeout, p.exited, func(l string) bool {
			return strings.Contains(l, "registered successfully") || strings.Contains(l, "Address already in use") ||
				strings.Contains(l, "failed")
		})
		text := out.String()
		switch {
		case err == nil && strings.Contains(text, "registered successfully"):
			k.expect(0, "IMBOT-REGISTER user="+user)
			return bs
		case strings.Contains(text, "Address already in use") && attempt < 5:
			t.Logf("baresip lost port %d; trying another", port)
			p.stop(syscall.SIGKILL, 0)
			continue
		}
		t.Fatalf("baresip did not register as %s (%v):\n%s", user, err, text)
	}
}

// message sends text to the current contact (/message).
func (bs *baresip) message(text string) { bs.p.send(bs.t, "/message "+text) }

// expectMessage waits until baresip prints a message received from from with text: the
// line is `sip:bot@127.0.0.1: "text"`.
func (bs *baresip) expectMessage(from, text string) {
	bs.t.Helper()
	want := fmt.Sprintf("%s: %q", from, text)
	if _, _, err := bs.out.wait(0, toolTimeout, bs.p.exited, containsAll(want)); err != nil {
		bs.t.Fatalf("baresip did not print %s: %v", want, err)
	}
}

// expectEvent waits until the test bot's handler saw an event line containing every one of
// subs (see eventLine).
func (b *testBot) expectEvent(t *testing.T, subs ...string) {
	t.Helper()
	if _, _, err := b.events.wait(0, toolTimeout, nil, containsAll(subs...)); err != nil {
		t.Fatalf("the bot's handler saw no event with %q (%v); it saw:\n%s", subs, err, b.events.String())
	}
}

// TestBaresipPage: baresip, registered as alice, sends a page-mode MESSAGE to the bot's
// address of record through Kamailio (lookup location); the bot's reply, a new MESSAGE
// through its outbound proxy (answering Kamailio's 407), reaches baresip.
func TestBaresipPage(t *testing.T) {
	k := startKamailio(t, kamOptions{})
	b := startRegisteredBot(t, k, "udp", nil)
	bs := startBaresip(t, k, "alice", "alicepw", `"Bot" <sip:bot@127.0.0.1>`)

	bs.message("hello from baresip, grüße")
	b.expectEvent(t, "message page sip:alice@127.0.0.1: hello from baresip, grüße")
	bs.expectMessage("sip:bot@127.0.0.1", "echo: hello from baresip, grüße")
	// baresip prints a message before it answers it: wait for the answer too.
	b.expectEvent(t, "replied page sip:alice@127.0.0.1: echo: hello from baresip, grüße (err <nil>)")
	k.expect(0, "IMBOT-ROUTE MESSAGE sip:bot@127.0.0.1:", "from=sip:alice@127.0.0.1")
	k.expect(0, "IMBOT-ROUTE MESSAGE sip:alice-", "from=sip:bot@127.0.0.1")
}

// TestBaresipSend: the bot sends a proactive page-mode message (Bot.Send) to alice's
// address of record through Kamailio, over UDP and over TCP to the proxy; baresip shows it,
// and its answer is served by the bot's handler like any message. A Send to a user who is
// not registered is refused with Kamailio's 404.
func TestBaresipSend(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			k := startKamailio(t, kamOptions{})
			b := startRegisteredBot(t, k, network, nil)
			bs := startBaresip(t, k, "alice", "alicepw", `"Bot" <sip:bot@127.0.0.1>`)

			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			d, err := b.Send(ctx, "sip:alice@127.0.0.1", "build 42 is green")
			if err != nil || d != bot.Delivered {
				t.Fatalf("Send to alice: %v, %v; want delivered", d, err)
			}
			bs.expectMessage("sip:bot@127.0.0.1", "build 42 is green")
			k.expect(0, "IMBOT-ROUTE MESSAGE sip:alice-", "from=sip:bot@127.0.0.1", "/"+network)

			bs.message("thanks")
			b.expectEvent(t, "message page sip:alice@127.0.0.1: thanks")
			bs.expectMessage("sip:bot@127.0.0.1", "echo: thanks")
			b.expectEvent(t, "replied page sip:alice@127.0.0.1: echo: thanks (err <nil>)")

			_, err = b.Send(ctx, "sip:nobody@127.0.0.1", "anyone?")
			var se *bot.SendError
			if !errors.As(err, &se) || se.Code != 404 {
				t.Fatalf("Send to an unregistered user: %v; want a *bot.SendError with 404", err)
			}
		})
	}
}
