package bot_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

var networks = []string{"udp", "tcp"}

func TestPageModeEcho(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			rec := newRecorder()
			r := startBot(t, bot.Config{}, rec)
			p := newPeer(t, r, network, bottest.Options{DisplayName: "Alice"})
			ctx := testCtx(t)

			res, err := p.SendPage(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %d, want 200", res.StatusCode)
			}
			if to := res.To(); to == nil || !to.Params.Has("tag") {
				t.Error("200 to a page-mode MESSAGE has no To-tag")
			}
			if res.Contact() != nil {
				t.Error("200 to a page-mode MESSAGE has a Contact")
			}
			if len(res.Body()) != 0 {
				t.Errorf("200 to a page-mode MESSAGE has a body %q", res.Body())
			}
			reply, err := p.WaitText(ctx, "echo: hello")
			if err != nil {
				t.Fatal(err)
			}
			if reply.InDialog {
				t.Error("page-mode reply carries a To-tag")
			}
			if got := reply.ContentType; !strings.EqualFold(strings.ReplaceAll(got, " ", ""), "text/plain;charset=UTF-8") {
				t.Errorf("reply Content-Type %q, want text/plain;charset=UTF-8", got)
			}
			if from := reply.Request.From(); from == nil || from.Address.User != "bot" {
				t.Errorf("reply From %v, want the bot's address", from)
			}
			// The peer did not announce isComposing: no typing for it.
			for _, rc := range p.Records() {
				if rc.Kind == bottest.KindTyping {
					t.Errorf("typing sent to a peer that did not accept it: %v", rc)
				}
			}
			if _, err := p.SendPage(ctx, "again"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: again"); err != nil {
				t.Fatal(err)
			}
			want := []string{"session.start", "message:hello", "message:again"}
			if got := rec.snapshot(); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

func TestPageModeTyping(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			r := startBot(t, bot.Config{}, newRecorder())
			p := newPeer(t, r, network, bottest.Options{AcceptComposing: true})
			ctx := testCtx(t)
			if _, err := p.SendPage(ctx, "hi"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: hi"); err != nil {
				t.Fatal(err)
			}
			recs := p.Records()
			if len(recs) != 2 || recs[0].Kind != bottest.KindTyping || !recs[0].Active || recs[1].Kind != bottest.KindText {
				t.Fatalf("want typing active then the reply, got %v", recs)
			}
			if recs[0].Dialect != bottest.DialectIETF || recs[0].Refresh <= 0 {
				t.Errorf("typing %v: want RFC 3994 with a refresh", recs[0])
			}
		})
	}
}

func TestPageModeTypingRefused(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{AcceptComposing: true, RefuseComposing: true})
	ctx := testCtx(t)
	for _, text := range []string{"one", "two", "three"} {
		if _, err := p.SendPage(ctx, text); err != nil {
			t.Fatal(err)
		}
		if _, err := p.WaitText(ctx, "echo: "+text); err != nil {
			t.Fatal(err)
		}
	}
	typing := 0
	for _, rc := range p.Records() {
		if rc.Kind == bottest.KindTyping {
			typing++
			if rc.Status != 415 {
				t.Errorf("typing answered %d", rc.Status)
			}
		}
	}
	if typing != 1 {
		t.Errorf("%d typing notices sent; want exactly one, then none after the 415", typing)
	}
}

func TestPageModeReceiptsAndTypingAreNotText(t *testing.T) {
	rec := newRecorder()
	r := startBot(t, bot.Config{}, rec)
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	imdn := `<?xml version="1.0" encoding="UTF-8"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>abc</message-id><datetime>2026-11-25T12:00:00Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>`
	res, err := p.SendPageRaw(ctx, "message/imdn+xml", []byte(imdn))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("IMDN answered %v, %v; want 200", res, err)
	}
	if res, err := p.SendPageTyping(ctx, true); err != nil || res.StatusCode != 200 {
		t.Fatalf("isComposing answered %v, %v; want 200", res, err)
	}
	rec.waitFor(t, "typing:true")
	if _, err := p.SendPage(ctx, "text"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "echo: text"); err != nil {
		t.Fatal(err)
	}
	want := "session.start|typing:true|message:text"
	if got := strings.Join(rec.snapshot(), "|"); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	// The peer sent isComposing: it gets typing from now on.
	if _, err := p.Wait(ctx, bottest.IsTyping(true)); err != nil {
		t.Error(err)
	}
}

func TestPageModeBodies(t *testing.T) {
	cases := []struct {
		name, ct, body, want string
	}{
		{"utf8 default", "text/plain", "h\u00e9llo", "h\u00e9llo"},
		{"latin1", "text/plain;charset=ISO-8859-1", "caf\xe9", "caf\u00e9"},
		{"html", "text/html", "<p>Hello <b>there</b></p>", "Hello there"},
		{"multipart prefers plain", "multipart/alternative; boundary=XX",
			"--XX\r\nContent-Type: text/html\r\n\r\n<b>rich</b>\r\n--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX--\r\n", "plain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := startBot(t, bot.Config{}, newRecorder())
			p := newPeer(t, r, "tcp", bottest.Options{})
			ctx := testCtx(t)
			res, err := p.SendPageRaw(ctx, c.ct, []byte(c.body))
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("answered %v, %v", res, err)
			}
			if _, err := p.WaitText(ctx, "echo: "+c.want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPageModeRefusals(t *testing.T) {
	cases := []struct {
		name   string
		ct     string
		body   []byte
		code   int
		header string // a header the answer must carry
	}{
		{"unknown type", "application/octet-stream", []byte{1, 2, 3}, 415, "Accept"},
		{"legacy invitation", "text/x-msmsgsinvite", []byte("Application-Name: File Transfer"), 415, "Accept"},
		{"too large", "text/plain", []byte(strings.Repeat("a", 20000)), 413, ""},
		{"bad isComposing", "application/im-iscomposing+xml", []byte("<nope"), 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder()
			r := startBot(t, bot.Config{}, rec)
			p := newPeer(t, r, "tcp", bottest.Options{})
			ctx := testCtx(t)
			res, err := p.SendPageRaw(ctx, c.ct, c.body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != c.code {
				t.Fatalf("answered %d, want %d", res.StatusCode, c.code)
			}
			if c.header != "" && res.GetHeader(c.header) == nil {
				t.Errorf("%d answer has no %s header", c.code, c.header)
			}
			// The bot keeps answering normal traffic.
			if _, err := p.SendPage(ctx, "still there?"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: still there?"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPageModeLongReplyOverUDPIsSplit(t *testing.T) {
	words := make([]string, 600)
	for i := range words {
		words[i] = "word" + strings.Repeat("x", i%7)
	}
	long := strings.Join(words, " ")
	h := bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		return w.Reply(ctx, long)
	})
	r := startBot(t, bot.Config{}, h)
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	if _, err := p.SendPage(ctx, "tell me everything"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(strings.Fields(strings.Join(got, " "))) < len(words) {
		n := len(got)
		if _, err := p.Wait(ctx, func(rc bottest.Record) bool {
			return rc.Kind == bottest.KindText && len(p.Texts()) > n
		}); err != nil {
			t.Fatalf("after %d parts: %v", n, err)
		}
		got = p.Texts()
	}
	if len(got) < 2 {
		t.Fatalf("a %d-byte reply went out in %d UDP message(s)", len(long), len(got))
	}
	for _, rc := range p.Records() {
		if size := len(rc.Request.String()); size > 1300 {
			t.Errorf("a UDP request of %d bytes (limit 1300)", size)
		}
	}
	if joined := strings.Join(got, " "); joined != long {
		t.Errorf("parts do not add up to the reply: words were cut or reordered")
	}
}

func TestPageModeCPIMAndDeliveryReceipt(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	cpim := "From: <" + p.URI() + ">\r\nTo: <sip:bot@127.0.0.1>\r\nDateTime: 2026-11-25T12:00:00Z\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: Xy12Ab34\r\n" +
		"imdn.Disposition-Notification: positive-delivery, display\r\n\r\n" +
		"Content-Type: text/plain;charset=UTF-8\r\n\r\nHello Bob"
	res, err := p.SendPageRaw(ctx, "message/cpim", []byte(cpim))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("CPIM answered %v, %v", res, err)
	}
	if _, err := p.WaitText(ctx, "echo: Hello Bob"); err != nil {
		t.Fatal(err)
	}
	receipt, err := p.Wait(ctx, func(rc bottest.Record) bool {
		body := string(rc.Request.Body())
		return strings.HasPrefix(rc.ContentType, "message/cpim") && strings.Contains(body, "<message-id>Xy12Ab34</message-id>")
	})
	if err != nil {
		t.Fatal(err)
	}
	if body := string(receipt.Request.Body()); !strings.Contains(body, "<delivered/>") || !strings.Contains(body, "message/imdn+xml") {
		t.Errorf("receipt body:\n%s", body)
	}
	// A CPIM message that asks for nothing gets no receipt.
	plain := strings.Replace(cpim, "imdn.Disposition-Notification: positive-delivery, display\r\n", "", 1)
	plain = strings.Replace(plain, "Xy12Ab34", "NoReceipt", 1)
	plain = strings.Replace(plain, "Hello Bob", "quiet", 1)
	if _, err := p.SendPageRaw(ctx, "message/cpim", []byte(plain)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "echo: quiet"); err != nil {
		t.Fatal(err)
	}
	for _, rc := range p.Records() {
		if strings.Contains(string(rc.Request.Body()), "NoReceipt") {
			t.Error("a receipt was sent for a message that did not ask for one")
		}
	}
}

func TestPageModeDeflate(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write([]byte("compressed hello"))
	zw.Close()
	res, err := p.SendPageRaw(ctx, "text/plain", buf.Bytes(), sip.NewHeader("Content-Encoding", "deflate"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("deflate body answered %v, %v", res, err)
	}
	if _, err := p.WaitText(ctx, "echo: compressed hello"); err != nil {
		t.Fatal(err)
	}
	res, err = p.SendPageRaw(ctx, "text/plain", []byte("x"), sip.NewHeader("Content-Encoding", "br"))
	if err != nil || res.StatusCode != 415 {
		t.Fatalf("unknown encoding answered %v, %v; want 415", res, err)
	}
}
