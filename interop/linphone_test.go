package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// This file drives linphonec 5.1 (PROTOCOL.md 3.3) as a user's client registered with
// Kamailio, through its stdin (linphonecsh uses one fixed socket per user, so two tests at
// once would clash).

// linphone is a running linphonec with its own HOME and XDG folders.
type linphone struct {
	t   *testing.T
	p   *proc
	out *lineLog
	log string // liblinphone's own log file
}

// startLinphone starts linphonec registered with k as user (password pw) and waits until
// Kamailio saw its REGISTER. It is killed when the test ends.
func startLinphone(t *testing.T, k *kamailio, user, pw string) *linphone {
	t.Helper()
	bin := requireTool(t, "linphonec", "linphone-cli")
	dir := t.TempDir()
	home, data, config, cache := filepath.Join(dir, "home"), filepath.Join(dir, "data"),
		filepath.Join(dir, "config"), filepath.Join(dir, "cache")
	// The data folder must exist before start, or linphonec never opens its SIP port.
	for _, d := range []string{home, filepath.Join(data, "linphone"), config, cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	// linphonec rewrites this file while it runs: write it before start only.
	rc := fmt.Sprintf(`[sip]
sip_port=%d
sip_tcp_port=0
sip_tls_port=0
bind_address=127.0.0.1
default_proxy=0
use_ipv6=0

[net]
firewall_policy=0
ipv6=0

[rtp]
audio_rtp_port=%d-%d

[sound]
playback_dev_id=Null
ringer_dev_id=Null
capture_dev_id=Null
echocancellation=0

[video]
enabled=0
capture=0
display=0

[storage]
uri=%s

[proxy_0]
reg_proxy=<sip:%s;transport=udp>
reg_identity="%s" <sip:%s@127.0.0.1>
reg_expires=300
reg_sendregister=1

[auth_info_0]
username=%s
passwd=%s
realm=127.0.0.1
domain=127.0.0.1
`, port, port+2, port+20, filepath.Join(data, "linphone", "linphone.db"), k.addr(), user, user, user, pw)
	rcPath := filepath.Join(dir, "linphonerc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + data, "XDG_CONFIG_HOME=" + config, "XDG_CACHE_HOME=" + cache}
	out := &lineLog{}
	logFile := filepath.Join(dir, "linphone.log")
	mark := k.log.Len()
	p, err := startProc("linphonec", dir, env, out, bin, "-c", rcPath, "-d", "5", "-l", logFile)
	if err != nil {
		t.Fatal(err)
	}
	lp := &linphone{t: t, p: p, out: out, log: logFile}
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL, 0)
		if t.Failed() {
			t.Logf("linphonec (%s) output:\n%s", user, out.String())
			t.Logf("liblinphone log, SIP part:\n%s", lp.sipLog())
		}
	})
	if _, _, err := k.log.wait(mark, toolTimeout, p.exited, containsAll("IMBOT-REGISTER user="+user)); err != nil {
		t.Fatalf("linphonec did not register as %s: %v\n%s", user, err, out.String())
	}
	return lp
}

// chat sends a page-mode message with the chat command.
func (lp *linphone) chat(to, text string) { lp.p.send(lp.t, "chat "+to+" "+text) }

// expectOutput waits until linphonec printed a line containing every one of subs.
func (lp *linphone) expectOutput(subs ...string) {
	lp.t.Helper()
	if _, _, err := lp.out.wait(0, toolTimeout, lp.p.exited, containsAll(subs...)); err != nil {
		lp.t.Fatalf("linphonec printed no line with %q: %v", subs, err)
	}
}

// sipLog returns the lines of liblinphone's log that carry SIP messages or chat state.
func (lp *linphone) sipLog() string {
	data, err := os.ReadFile(lp.log)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

var ciRe = regexp.MustCompile(` ci=([^ ]+) `)

// TestLinphonePage: linphonec, registered as bob, chats with the bot's address of record
// through Kamailio and gets the echo. For every message it receives, linphonec sends an
// IMDN "delivered" receipt (message/imdn+xml, sometimes deflated): the bot answers it 200
// and does not take it for text (no event, no echo).
func TestLinphonePage(t *testing.T) {
	k := startKamailio(t, kamOptions{})
	b := startRegisteredBot(t, k, "udp", nil)
	lp := startLinphone(t, k, "bob", "bobpw")

	for i, text := range []string{"hello from linphone", "second message"} {
		lp.chat("sip:bot@127.0.0.1", text)
		b.expectEvent(t, "message page sip:bob@127.0.0.1: "+text)
		lp.expectOutput("Message received from sip:bot@127.0.0.1: echo: " + text)
		b.expectEvent(t, "replied page sip:bob@127.0.0.1: echo: "+text+" (err <nil>)")

		// linphonec's receipt for the echo reaches the bot, which answers 200.
		imdn := ""
		from := 0
		for n := 0; n <= i; n++ {
			var idx int
			imdn, idx = k.expect(from, "IMBOT-ROUTE MESSAGE sip:bot@", "from=sip:bob@127.0.0.1", "ct=message/imdn+xml")
			from = idx + 1
		}
		ci := ciRe.FindStringSubmatch(imdn)
		if ci == nil {
			t.Fatalf("no Call-ID in %q", imdn)
		}
		k.expect(0, "IMBOT-REPLY 200 OK MESSAGE ci="+ci[1]+" ")
		t.Logf("receipt %d: %s", i+1, imdn[strings.Index(imdn, "IMBOT-"):])
	}

	// The receipts were not handled as messages, and the bot sent bob nothing but its two
	// echoes (its conversation is ordered: the first receipt was handled before the second
	// message).
	var msgs []string
	for _, l := range b.events.Lines(0) {
		if strings.HasPrefix(l, "message ") {
			msgs = append(msgs, l)
		}
	}
	if len(msgs) != 2 {
		t.Errorf("the handler saw %d messages, want the 2 texts:\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
	var sent []string
	for _, l := range k.log.Lines(0) {
		if strings.Contains(l, "IMBOT-ROUTE MESSAGE") && strings.Contains(l, "from=sip:bot@") {
			sent = append(sent, l)
		}
	}
	if len(sent) != 2 {
		t.Errorf("the bot sent bob %d MESSAGEs, want its 2 echoes:\n%s", len(sent), strings.Join(sent, "\n"))
	}
}
