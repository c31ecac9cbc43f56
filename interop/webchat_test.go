package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// This file drives the web chat widget in a real browser: Debian's chromium, headless,
// through chromedp.

// cutter relays TCP connections to a backend and can cut them all at once, as a network
// drop would.
type cutter struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	conns   []net.Conn
}

func startCutter(t *testing.T, backend string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, backend: backend}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", backend)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

// cut closes every connection relayed so far.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// browser is a headless chromium tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go
	n     int

	mu       sync.Mutex
	problems []string // uncaught exceptions and Content-Security-Policy violations
	logs     []string // what else the page logged as an error
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := requireTool(t, "chromium", "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The page's exceptions and the browser's complaints (a CSP violation is one).
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, desc))
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				if strings.Contains(e.Entry.Text, "Content Security Policy") {
					b.problems = append(b.problems, "CSP: "+e.Entry.Text)
				} else {
					b.logs = append(b.logs, e.Entry.Text)
				}
			}
		}
	}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shots := os.Getenv("IMBOT_SCREENSHOTS")
	if shots == "" {
		dir, err := os.MkdirTemp("", "imbot-webchat-")
		if err != nil {
			t.Fatal(err)
		}
		shots = dir
	}
	b.shots = shots
	return b
}

// check fails the test for the page's exceptions and CSP violations so far.
func (b *browser) check() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("in the page: %s", p)
	}
	if len(b.logs) > 0 {
		b.t.Logf("the page logged: %q", b.logs)
	}
}

// do runs steps with a deadline.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, toolTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until waits until the JavaScript expression is true.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, toolTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(toolTimeout),
		chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify(window.ImbotChat && ImbotChat.state())`))
		b.t.Fatalf("waiting for %s: %v\nwidget state: %s", what, err, state)
	}
}

// inText is a JavaScript expression: a message from the bot contains s.
func inText(s string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('.imbot-msg-in .imbot-text')].some(e => e.textContent.includes(%q))`, s)
}

// say types text into the widget, key by key, and sends it with Enter.
func (b *browser) say(text string) {
	b.t.Helper()
	b.do("typing "+text, chromedp.SendKeys(chromedp.CSS(".imbot-input"), text+"\r"))
}

// shot saves a screenshot of the page as NN-name.png.
func (b *browser) shot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, toolTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.n++
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// TestWebChatBrowser: a visitor opens the helpdesk's demo page in chromium and chats with
// the bot through the widget (SIP over WebSocket, page mode): the greeting, its own typing
// seen by the bot, the bot's typing dots and the reply, a request for a person that the
// technician Judy (linphonec, through Kamailio) accepts, and a conversation between them in
// the same widget. The WebSocket is cut: the widget says it reconnects, reconnects, and the
// conversation goes on both ways. Screenshots of the key moments go to a folder the test
// logs (IMBOT_SCREENSHOTS to choose it).
func TestWebChatBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs chromium, Kamailio, linphonec and the imbot binary")
	}
	k := startKamailio(t, kamOptions{})
	bin := imbotBinary(t)
	br := startBrowser(t)
	dir := t.TempDir()
	wsPort := freePort(t)
	proxy := startCutter(t, "127.0.0.1:"+strconv.Itoa(wsPort))
	cfg := helpdeskConfig(t, k, dir, 3*time.Second, func(cfg map[string]any) {
		cfg["listen"] = append(cfg["listen"].([]string), "ws://127.0.0.1:"+strconv.Itoa(wsPort))
		cfg["web"] = map[string]any{"listen": "127.0.0.1:0", "websocket": "ws://" + proxy.addr()}
		cfg["log"] = map[string]any{"level": "debug"}
		ho := cfg["handoff"].(map[string]any)
		ho["agents"] = []map[string]any{{"uri": "sip:judy@127.0.0.1", "name": "Judy", "max": 2}}
	})
	b := startImbot(t, k, bin, cfg)
	line, _, err := b.out.wait(0, toolTimeout, b.p.exited, containsAll("web chat on http://"))
	if err != nil {
		t.Fatalf("no web chat in imbot's banner: %v", err)
	}
	_, rest, _ := strings.Cut(line, "web chat on http://")
	webAddr, _, _ := strings.Cut(rest, "/")
	judy := linphoneChatter(t, "Judy", startLinphone(t, k, "judy", "judypw"), "sip:bot@127.0.0.1")
	t.Logf("screenshots in %s", br.shots)

	br.do("opening the demo page", chromedp.Navigate("http://"+webAddr+"/imbot/demo"),
		chromedp.WaitVisible(chromedp.CSS(".imbot-launcher")))
	br.shot("demo-page")
	br.do("opening the chat", chromedp.Click(chromedp.CSS(".imbot-launcher")), chromedp.WaitVisible(chromedp.CSS(".imbot-input")))
	br.until("the widget to connect", `ImbotChat.state().connected`)

	// The visitor types: the bot sees it (an isComposing "active" from a verified guest).
	mark := b.out.Len()
	br.do("typing", chromedp.SendKeys(chromedp.CSS(".imbot-input"), "Hello"))
	if _, _, err := b.out.wait(mark, toolTimeout, b.p.exited, containsAll("msg=event", "kind=typing", "peer=sip:guest-", "verified=true")); err != nil {
		t.Fatalf("the bot never saw the visitor typing: %v", err)
	}
	br.do("sending", chromedp.SendKeys(chromedp.CSS(".imbot-input"), "\r"))
	br.until("the greeting", inText("I am the Contoso IT helpdesk bot"))
	br.until("the message delivered", `ImbotChat.state().messages.some(m => m.dir === "out" && m.state === "sent")`)
	br.shot("greeting")

	// An answer the bot types for a moment: the dots, then the answer.
	br.say("I forgot my password")
	br.until("the bot's typing dots", `document.querySelector('.imbot-typing.imbot-typing-on') !== null`)
	br.shot("bot-typing")
	br.until("the answer", inText("reset your password"))
	br.until("the dots gone", `document.querySelector('.imbot-typing.imbot-typing-on') === null`)
	br.shot("answer")

	// A person: Judy, on linphonec, accepts and answers in the same widget.
	br.say("I want to talk to a person")
	br.until("the handoff", inText("Let me find a person to help you."))
	judy.expect("#1 ")
	judy.say("/accept")
	judy.expect("You are now talking with")
	br.until("Judy joining", inText("Judy is now with you."))
	judy.say("Hello, Judy here. How can I help?")
	br.until("Judy's line", inText("Judy: Hello, Judy here. How can I help?"))
	br.say("My laptop will not start")
	judy.expect(": My laptop will not start")
	br.shot("agent")

	// The network drops: the widget reconnects and the conversation goes on.
	proxy.cut()
	br.until("the widget to notice", `!ImbotChat.state().connected`)
	br.shot("reconnecting")
	br.until("the widget to reconnect", `ImbotChat.state().connected`)
	judy.say("Still with me?")
	br.until("Judy's line after the reconnection", inText("Judy: Still with me?"))
	br.say("Yes, still here")
	judy.expect(": Yes, still here")
	br.shot("reconnected")

	// No exception in the page and no Content-Security-Policy violation on the way.
	br.check()
	b.signal(syscall.SIGTERM)
}
