package imbotcmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestWebChatWired runs imbot run's assembly with a web section: the widget and its demo
// page are served, a visitor gets a token, its page's origin opens the bot's WebSocket (and
// another origin's does not), its messages are accepted with the token, and past
// web.ratelimit it is told to slow down; a SIP client is not held to the visitors' limit.
func TestWebChatWired(t *testing.T) {
	a := startApp(t, `
listen: ["udp://127.0.0.1:0", "ws://127.0.0.1:0"]
identity: sip:imbot@127.0.0.1
store: {driver: memory}
log: {level: error}
web:
  listen: 127.0.0.1:0
  ratelimit: {every: 1h, burst: 2}
`)
	base := "http://" + a.webLn.Addr().String()
	if code, body := get(t, base+"/imbot/demo"); code != http.StatusOK || !strings.Contains(body, "chat.js") {
		t.Fatalf("demo page: %d %q", code, body)
	}
	res, err := http.Post(base+"/imbot/token", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ URI, Token, WS, Bot string }
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.HasPrefix(tok.URI, "sip:guest-") || tok.WS != "ws://"+a.bot.Addr("ws") || tok.Bot != a.bot.URI() {
		t.Fatalf("token answer %+v", tok)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func(origin string) (*ws.Dialer, error) {
		d := ws.Dialer{Protocols: []string{"sip"}, Header: ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})}
		_, _, _, err := d.Dial(ctx, tok.WS)
		return &d, err
	}
	if _, err := dial("https://evil.example"); err == nil {
		t.Error("a page of another origin opened the bot's WebSocket")
	}
	d, err := dial(base)
	if err != nil {
		t.Fatalf("the demo page's origin cannot open the WebSocket: %v", err)
	}
	conn, _, _, err := d.Dial(ctx, tok.WS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("message %d", i)
		msg := fmt.Sprintf("MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bKw%d\r\nMax-Forwards: 70\r\n"+
			"From: <%s>;tag=v%d\r\nTo: <%s>\r\nCall-ID: web-%d\r\nCSeq: 1 MESSAGE\r\n%s: %s\r\n"+
			"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			tok.Bot, i, tok.URI, i, tok.Bot, i, bot.GuestHeader, tok.Token, len(text), text)
		if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// Two pass; the third is refused and the visitor told, over its WebSocket.
	var got []string
	for {
		p, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatalf("no rate-limit answer; got %q: %v", got, err)
		}
		s := string(p)
		got = append(got, strings.SplitN(s, "\r\n", 2)[0])
		if strings.HasPrefix(s, "SIP/2.0 ") && !strings.HasPrefix(s, "SIP/2.0 200 ") {
			t.Fatalf("a visitor's message refused: %s", s)
		}
		if strings.HasPrefix(s, "MESSAGE ") {
			// Answer it, as the widget's JsSIP does.
			h := func(name string) string {
				_, v, _ := strings.Cut(s, "\r\n"+name+": ")
				v, _, _ = strings.Cut(v, "\r\n")
				return v
			}
			ok := fmt.Sprintf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=w\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
				h("Via"), h("From"), h("To"), h("Call-ID"), h("CSeq"))
			if err := wsutil.WriteClientText(conn, []byte(ok)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(s, "writing faster") {
				break
			}
		}
	}

	// A SIP client writes as fast: the visitors' limit is not its.
	p := bottest.NewPeer(t, bottest.Options{User: "alice", Bot: a.bot.Addr("udp"), BotURI: a.bot.URI()})
	for i := range 3 {
		if res, err := p.SendPage(ctx, fmt.Sprintf("sip %d", i)); err != nil || res.StatusCode != 200 {
			t.Fatalf("SIP message %d: %v, %v", i, res, err)
		}
	}
	if texts := p.Texts(); len(texts) != 0 {
		t.Errorf("the SIP client got %q; the visitors' limit is not for it", texts)
	}
}

// TestRunWebFlag: `imbot run --web ADDR` on the default config serves the web chat, with a
// WebSocket listen address of its own on a free port, and says where.
func TestRunWebFlag(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		code := run(runCtx, []string{"run", "-port", "0", "-web", "127.0.0.1:0", "-log-level", "warn"}, outW, &stderr)
		outW.Close()
		exit <- code
	}()
	br := bufio.NewReader(outR)
	var web string
	var banner []string
	for web == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("no web chat in the banner %q: %v (stderr: %s)", banner, err, stderr.String())
		}
		banner = append(banner, line)
		if _, rest, ok := strings.Cut(line, "web chat on "); ok {
			web, _, _ = strings.Cut(rest, " ")
		}
	}
	go io.Copy(io.Discard, br)
	if !regexp.MustCompile(`ws 127\.0\.0\.1:[1-9]\d*`).MatchString(banner[0]) {
		t.Errorf("the banner %q names no WebSocket address", banner[0])
	}
	base := strings.TrimSuffix(web, "demo")
	res, err := http.Post(base+"token", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ WS string }
	_ = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if !regexp.MustCompile(`^ws://127\.0\.0\.1:[1-9]\d*$`).MatchString(tok.WS) {
		t.Errorf("the widget would connect to %q", tok.WS)
	}
	stop()
	if code := <-exit; code != 0 {
		t.Errorf("imbot run exited %d; stderr: %s", code, stderr.String())
	}
}
