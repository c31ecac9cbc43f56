package interop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// This file runs Kamailio (testdata/kamailio.cfg) as the registrar and record-routing proxy
// between the bot and real clients, and holds the tests of sign-in through it.

// kamOptions tune one Kamailio.
type kamOptions struct {
	// MinExpires lowers the registrar's min_expires (seconds; the config's default is 60), so
	// that a bot asking for a short expiry refreshes within the test.
	MinExpires int
	// SHA256 makes the digest challenges use algorithm=SHA-256.
	SHA256 bool
	// Dispatch lists bot instances (host:port): requests for sip:bot@127.0.0.1 go to them
	// through the dispatcher module, which probes them with OPTIONS, instead of to a
	// registered bot.
	Dispatch []string
}

// kamailio is a Kamailio process serving UDP and TCP on one free loopback port.
type kamailio struct {
	t    *testing.T
	bin  string
	cfg  string
	dir  string
	port int
	opts kamOptions
	log  *lineLog // stderr of every run, in order
	p    *proc    // the current run
}

// errPortLost reports that Kamailio could not bind its port (another process took it).
var errPortLost = errors.New("kamailio: port already in use")

// startKamailio starts Kamailio on a free port of 127.0.0.1 with its own run directory, and
// stops it when the test ends. It returns once Kamailio logged IMBOT-READY.
func startKamailio(t *testing.T, opts kamOptions) *kamailio {
	t.Helper()
	bin := requireTool(t, "kamailio", "kamailio")
	cfg, err := filepath.Abs(filepath.Join("testdata", "kamailio.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	k := &kamailio{t: t, bin: bin, cfg: cfg, dir: t.TempDir(), opts: opts, log: &lineLog{}}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("kamailio log:\n%s", k.log.String())
		}
	})
	for attempt := 1; ; attempt++ {
		k.port = freePort(t)
		err := k.start()
		if err == nil {
			return k
		}
		if !errors.Is(err, errPortLost) || attempt == 5 {
			t.Fatalf("%v", err)
		}
		t.Logf("kamailio lost port %d to another process; trying another", k.port)
	}
}

// start runs Kamailio on k.port and waits until it serves.
func (k *kamailio) start() error {
	k.t.Helper()
	p := strconv.Itoa(k.port)
	args := []string{
		"-f", k.cfg, "-DD", "-E",
		"-Y", k.dir, "-P", filepath.Join(k.dir, "kamailio.pid"),
		"-m", "64", "-M", "8",
		"-l", "udp:127.0.0.1:" + p, "-l", "tcp:127.0.0.1:" + p,
		"-A", fmt.Sprintf("CTL_SOCK=%q", "unix:"+k.ctlSocket()),
	}
	if k.opts.MinExpires > 0 {
		args = append(args, "-A", fmt.Sprintf("MIN_EXPIRES=%d", k.opts.MinExpires))
	}
	if k.opts.SHA256 {
		args = append(args, "-A", "AUTH_SHA256")
	}
	if len(k.opts.Dispatch) > 0 {
		var list strings.Builder
		for _, d := range k.opts.Dispatch {
			fmt.Fprintf(&list, "1 sip:%s\n", d)
		}
		path := filepath.Join(k.dir, "dispatcher.list")
		if err := os.WriteFile(path, []byte(list.String()), 0o644); err != nil {
			return err
		}
		args = append(args, "-A", fmt.Sprintf("DSLIST=%q", path))
	}
	mark := k.log.Len()
	proc, err := startProc("kamailio", k.dir, nil, k.log, k.bin, args...)
	if err != nil {
		return err
	}
	k.p = proc
	if _, _, err := k.log.wait(mark, toolTimeout, proc.exited, containsAll("IMBOT-READY")); err != nil {
		proc.stop(syscall.SIGKILL, 0)
		out := strings.Join(k.log.Lines(mark), "\n")
		if strings.Contains(out, "Address already in use") {
			return errPortLost
		}
		return fmt.Errorf("kamailio on port %d did not get ready (%v, %v):\n%s", k.port, err, proc.err, out)
	}
	return nil
}

// stop ends Kamailio (SIGTERM, then SIGKILL after 5s) and every process it forked.
func (k *kamailio) stop() {
	if k.p != nil {
		start := time.Now()
		k.p.stop(syscall.SIGTERM, 5*time.Second)
		if d := time.Since(start); d > time.Second {
			k.t.Logf("kamailio took %v to stop", d.Round(time.Millisecond))
		}
	}
}

// restart stops Kamailio and starts it again on the same port; its memory (the bindings)
// is lost, as after a crash.
func (k *kamailio) restart() {
	k.t.Helper()
	k.stop()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = k.start(); !errors.Is(err, errPortLost) {
			break
		}
		k.t.Logf("kamailio could not bind port %d again yet (attempt %d)", k.port, attempt)
	}
	if err != nil {
		k.t.Fatalf("restarting kamailio: %v", err)
	}
}

// addr is Kamailio's host:port.
func (k *kamailio) addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// uri is a SIP URI of Kamailio itself over a transport, for registrar and proxy settings.
func (k *kamailio) uri(network string) string {
	return fmt.Sprintf("sip:127.0.0.1:%d;transport=%s", k.port, network)
}

func (k *kamailio) ctlSocket() string { return filepath.Join(k.dir, "ctl") }

// expect waits for a marker line of Kamailio's log that contains every one of subs, at or
// after line index from, and returns it with its index.
func (k *kamailio) expect(from int, subs ...string) (string, int) {
	k.t.Helper()
	line, i, err := k.log.wait(from, toolTimeout, k.p.exited, containsAll(subs...))
	if err != nil {
		k.t.Fatalf("kamailio logged no line with %q: %v", subs, err)
	}
	return line, i
}

// kamcmd runs a kamcmd command against this Kamailio's control socket.
func (k *kamailio) kamcmd(args ...string) (string, error) {
	k.t.Helper()
	bin := requireTool(k.t, "kamcmd", "kamailio")
	return runTool(k.t, toolTimeout, bin, append([]string{"-s", "unix:" + k.ctlSocket()}, args...)...)
}

// waitReg waits until the bot's registration satisfies ok and returns it. It waits on
// Registration's change channel, and reports every state seen if the deadline passes.
func waitReg(t *testing.T, b *testBot, what string, timeout time.Duration, ok func(bot.Registration) bool) bot.Registration {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var seen []string
	for {
		st, changed := b.Registration()
		if ok(st) {
			return st
		}
		s := st.State.String()
		if st.Reason != "" {
			s += " (" + st.Reason + ")"
		}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("bot registration: not %s within %v; states seen: %s", what, timeout, strings.Join(seen, " -> "))
		}
	}
}

// isState matches a registration state.
func isState(s bot.RegState) func(bot.Registration) bool {
	return func(r bot.Registration) bool { return r.State == s }
}

// botCreds are the bot's test credentials in kamailio.cfg.
const botUser, botPassword = "bot", "botpw"

// startRegisteredBot starts an echo bot that registers with k over network ("udp" or "tcp")
// and sends what it originates through k, and waits until it is registered.
func startRegisteredBot(t *testing.T, k *kamailio, network string, configure func(*bot.Config)) *testBot {
	t.Helper()
	b := startBotConfig(t, func(c *bot.Config) {
		c.OutboundProxy = k.uri(network)
		c.Registration = bot.RegistrationConfig{
			Registrar: k.uri(network),
			Username:  botUser,
			Password:  botPassword,
			RetryMin:  100 * time.Millisecond,
			RetryMax:  2 * time.Second,
		}
		if configure != nil {
			configure(c)
		}
	})
	waitReg(t, b, "registered", toolTimeout, isState(bot.RegRegistered))
	return b
}

// callIDOf returns the Call-ID in the log prefix of a Kamailio line: "{1 2 REGISTER <Call-ID>}".
func callIDOf(line string) string {
	_, rest, _ := strings.Cut(line, "{")
	prefix, _, _ := strings.Cut(rest, "}")
	f := strings.Fields(prefix)
	if len(f) < 4 {
		return ""
	}
	return f[3]
}

// cseqRe reads the CSeq of an IMBOT-REGISTER line.
var cseqRe = regexp.MustCompile(`cseq=(\d+)`)

func lineCSeq(t *testing.T, line string) int {
	t.Helper()
	m := cseqRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no cseq in %q", line)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestKamailioRegister signs the bot in to Kamailio with digest authentication (MD5 and
// SHA-256): Kamailio shows the binding (its log and kamcmd ul.lookup) and routes a MESSAGE
// to the bot through it; the bot refreshes before the short expiry it was granted; at
// shutdown it unregisters, and a MESSAGE to the bot then gets 404.
func TestKamailioRegister(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		sha256        bool
		alg           string // algorithm in the bot's Authorization, as Kamailio logs it
	}{
		{"md5-udp", "udp", false, "alg= "}, // no algorithm parameter: MD5
		{"sha256-tcp", "tcp", true, "alg=SHA-256 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := startKamailio(t, kamOptions{MinExpires: 2, SHA256: tc.sha256})
			mark := k.log.Len()
			b := startRegisteredBot(t, k, tc.network, func(c *bot.Config) {
				c.Registration.Expires = 4 * time.Second
			})
			st, _ := b.Registration()
			if left := time.Until(st.Expires); left <= 0 || left > 5*time.Second {
				t.Errorf("granted expiry: binding lapses in %v, want about 4s", left)
			}
			contact := "sip:bot@" + b.Addr(tc.network) + ";transport=" + tc.network
			line, first := k.expect(mark, "IMBOT-REGISTER user=bot", contact, "expires=4 ", tc.alg, "/"+tc.network)
			t.Logf("kamailio: %s", line)

			// Kamailio shows the binding.
			out, err := k.kamcmd("ul.lookup", "location", "bot")
			if err != nil || !strings.Contains(out, contact) {
				t.Fatalf("kamcmd ul.lookup location bot: %v\n%s\nwant the contact %s", err, out, contact)
			}

			// A MESSAGE to the bot's address of record reaches it through lookup(location),
			// and its reply comes back through Kamailio (where the bot answers a 407). The
			// client uses UDP: see TestKamailioPageClientTCP for a TCP client.
			peer := dialRaw(t, "udp", k.addr())
			res := peer.do(textMessage("are you there?"), k.addr())
			requireStatus(t, res, 200)
			peer.expectEcho("are you there?")
			k.expect(mark, "IMBOT-ROUTE MESSAGE sip:dave@", "from=sip:bot@127.0.0.1")

			// The bot refreshes at half the 4s it was granted, in the same registration
			// (same Call-ID, higher CSeq).
			refresh, _ := k.expect(first+1, "IMBOT-REGISTER user=bot", contact, "expires=4 ")
			t.Logf("kamailio: %s", refresh)
			if lineCSeq(t, refresh) <= lineCSeq(t, line) || callIDOf(refresh) != callIDOf(line) {
				t.Errorf("refresh %q does not continue registration %q", refresh, line)
			}
			waitReg(t, b, "refreshed", toolTimeout, func(r bot.Registration) bool {
				return r.State == bot.RegRegistered && r.Expires.After(st.Expires)
			})

			// Shutdown removes the binding.
			mark = k.log.Len()
			b.stop()
			k.expect(mark, "IMBOT-REGISTER user=bot", "expires=0")
			if st, _ := b.Registration(); st.State != bot.RegUnregistered {
				t.Errorf("after shutdown the registration is %v (%s), want unregistered", st.State, st.Reason)
			}
			if out, _ := k.kamcmd("ul.lookup", "location", "bot"); !strings.Contains(out, "AOR not found") {
				t.Errorf("kamcmd ul.lookup location bot after unregister:\n%s\nwant no binding", out)
			}
			res = peer.do(textMessage("still there?"), k.addr())
			requireStatus(t, res, 404)
		})
	}
}

// TestKamailioRegisterFirstTry: a bot registers at its first attempt. Run starts the
// registration while its UDP listener is not serving yet, and the first REGISTER can fail
// inside the bot ("listen udp 127.0.0.1:P: bind: address already in use": the client
// opens a second socket on the listening address), which costs RetryMin (1s by default)
// and shows the state "retrying" with a misleading reason at every start. Ten bots make
// the race show.
func TestKamailioRegisterFirstTry(t *testing.T) {
	k := startKamailio(t, kamOptions{})
	for i := range 10 {
		b := startRegisteredBot(t, k, "udp", nil)
		for _, l := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(l, "registration failed") {
				t.Errorf("bot %d: the first REGISTER failed: %s", i+1, l)
			}
		}
		b.stop()
	}
}

// TestKamailioWrongPassword: a bot with a wrong password ends in RegFailed with a clear
// reason, after one challenge and one refused answer, and waits long (RetryRefused, about a
// minute by default) before it tries again.
func TestKamailioWrongPassword(t *testing.T) {
	k := startKamailio(t, kamOptions{})
	b := startBotConfig(t, func(c *bot.Config) {
		c.Registration = bot.RegistrationConfig{Registrar: k.uri("udp"), Username: botUser, Password: "not-the-password"}
	})
	st := waitReg(t, b, "failed", toolTimeout, isState(bot.RegFailed))
	if !strings.Contains(st.Reason, "401") || !strings.Contains(st.Reason, "password") {
		t.Errorf("reason %q: want the 401 and a hint about the password", st.Reason)
	}
	if wait := time.Until(st.Next); wait < 30*time.Second {
		t.Errorf("next attempt in %v after a refusal: want a long pause (RetryRefused)", wait)
	}
	k.expect(0, "IMBOT-AUTHFAIL REGISTER user=bot")
}

// TestKamailioRestart stops Kamailio under a registered bot and starts it again on the
// same ports, with its bindings lost: the bot notices (retrying), registers again by itself,
// and a sipp page-mode client (UDP) reaches it through the new Kamailio.
//
//   - udp, tcp: the bot was granted 4s, so its next refresh (2s later) fails, by timeout
//     over UDP, by a refused connection over TCP;
//   - tcp-connection-lost: the bot was granted an hour; over TCP, Kamailio's exit closes
//     the bot's connection to the registrar, a transport error after which the bot must
//     register again (issue 4, "re-register after a transport error"), not wait half an
//     hour while Kamailio answers 404 for it.
func TestKamailioRestart(t *testing.T) {
	for _, tc := range []struct {
		name, network string
		expires       time.Duration
	}{
		{"udp", "udp", 4 * time.Second},
		{"tcp", "tcp", 4 * time.Second},
		{"tcp-connection-lost", "tcp", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireTool(t, "sipp", "sip-tester")
			k := startKamailio(t, kamOptions{MinExpires: 2})
			b := startRegisteredBot(t, k, tc.network, func(c *bot.Config) {
				c.Registration.Expires = tc.expires
				// A refresh sent to the dead Kamailio over UDP fails by timeout only.
				c.RequestTimeout = 3 * time.Second
				// Over TCP the CRLF keep-alive finds the lost connection (default every 30s).
				c.Registration.KeepAlive = 500 * time.Millisecond
			})

			k.stop()
			st := waitReg(t, b, "retrying after Kamailio stopped", 10*time.Second, isState(bot.RegRetrying))
			t.Logf("bot registration while Kamailio is down: %v (%s)", st.State, st.Reason)

			mark := k.log.Len()
			k.restart()
			waitReg(t, b, "registered again", toolTimeout, isState(bot.RegRegistered))
			k.expect(mark, "IMBOT-REGISTER user=bot", "sip:bot@"+b.Addr(tc.network))
			requirePageEcho(t, k)
		})
	}
}

// TestKamailioBindingLost: Kamailio loses the bot's binding while it runs (kamcmd ul.rm, as
// a restart without persistent bindings does) and the bot was granted an hour over UDP, where
// nothing else shows it: its binding check (an OPTIONS to its own address through
// Kamailio) gets 404, it registers again at once, and a page-mode client reaches it.
func TestKamailioBindingLost(t *testing.T) {
	requireTool(t, "sipp", "sip-tester")
	k := startKamailio(t, kamOptions{})
	b := startRegisteredBot(t, k, "udp", func(c *bot.Config) {
		c.Registration.Expires = time.Hour
		c.Registration.BindingCheck = 300 * time.Millisecond
	})
	mark := k.log.Len()
	if out, err := k.kamcmd("ul.rm", "location", "bot"); err != nil {
		t.Fatalf("kamcmd ul.rm location bot: %v\n%s", err, out)
	}
	k.expect(mark, "IMBOT-NOTFOUND OPTIONS sip:bot@")
	k.expect(mark, "IMBOT-REGISTER user=bot", "sip:bot@"+b.Addr("udp"))
	waitReg(t, b, "registered again", toolTimeout, isState(bot.RegRegistered))
	requirePageEcho(t, k)
}

// requirePageEcho runs sipp's page-mode client over UDP against the bot through Kamailio and
// requires the bot's echo.
func requirePageEcho(t *testing.T, k *kamailio) {
	t.Helper()
	res := runSipp(t, sippRun{
		Scenario:  "page_client.xml",
		OOC:       "page_echo.xml",
		Transport: "udp",
		Target:    k.addr(),
	})
	requireSippOK(t, res,
		"page 200: to-tag ;tag=",
		"bot replied: echo: hello, bot!",
		"page echo received: 1",
	)
}

// TestKamailioPageClientTCP: a page-mode client on TCP (sipp, From
// <sip:carol@127.0.0.1:PORT;transport=TCP>) writes to the bot through Kamailio. The bot's
// reply is a new MESSAGE to that From URI through the outbound proxy; Kamailio relays it as
// addressed, so the URI's transport=TCP must survive for the reply to come back over the
// client's TCP connection.
func TestKamailioPageClientTCP(t *testing.T) {
	requireTool(t, "sipp", "sip-tester")
	k := startKamailio(t, kamOptions{})
	startRegisteredBot(t, k, "tcp", nil)
	mark := k.log.Len()
	res := runSipp(t, sippRun{
		Scenario:  "page_client.xml",
		OOC:       "page_echo.xml",
		Transport: "tcp",
		Target:    k.addr(),
		Extra:     []string{"-timeout", "10s"}, // the echo comes within a second or never
	})
	if res.ExitCode != 0 {
		if line, _, err := k.log.wait(mark, 0, nil, containsAll("IMBOT-ROUTE MESSAGE sip:carol@", "from=sip:bot@")); err == nil {
			t.Logf("the bot's reply as Kamailio relayed it: %s", line)
		}
	}
	requireSippOK(t, res,
		"page 200: to-tag ;tag=",
		"bot replied: echo: hello, bot!",
		"page echo received: 1",
	)
}
