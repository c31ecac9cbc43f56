package bot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

func TestSessionEcho(t *testing.T) {
	cases := []struct {
		network string
		dialect bottest.Dialect
		typing  bottest.Dialect // the typing dialect the bot must answer in
	}{
		{"udp", bottest.DialectMS, bottest.DialectMS},
		{"tcp", bottest.DialectMS, bottest.DialectMS},
		{"udp", bottest.DialectIETF, bottest.DialectIETF},
		{"tcp", bottest.DialectIETF, bottest.DialectIETF},
	}
	for _, c := range cases {
		t.Run(c.network+"/"+c.dialect.String(), func(t *testing.T) {
			rec := newRecorder()
			r := startBot(t, bot.Config{}, rec)
			p := newPeer(t, r, c.network, bottest.Options{DisplayName: "Alice"})
			ctx := testCtx(t)

			s, err := p.OpenSession(ctx, c.dialect)
			if err != nil {
				t.Fatal(err)
			}
			sdp := string(s.SDP())
			if !strings.Contains(sdp, "m=message ") || !strings.Contains(sdp, " sip sip:") ||
				!strings.Contains(sdp, "a=accept-types:") || !strings.Contains(sdp, "text/plain") {
				t.Errorf("SDP answer lacks m=message ... sip <uri> or accept-types:\n%s", sdp)
			}
			rec.waitFor(t, "session.start")
			if res, err := s.Typing(ctx, true); err != nil || res.StatusCode != 200 {
				t.Fatalf("typing answered %v, %v", res, err)
			}
			rec.waitFor(t, "typing:true")
			if res, err := s.Send(ctx, "what time is it?"); err != nil || res.StatusCode != 200 {
				t.Fatalf("MESSAGE answered %v, %v", res, err)
			}
			reply, err := s.WaitText(ctx, "echo: what time is it?")
			if err != nil {
				t.Fatal(err)
			}
			if !reply.InDialog || reply.CallID != s.CallID() {
				t.Errorf("reply not in the dialog: %v", reply)
			}
			recs := s.Records()
			if len(recs) < 2 || recs[0].Kind != bottest.KindTyping || !recs[0].Active || recs[0].Dialect != c.typing {
				t.Fatalf("want typing (%v) before the reply, got %v", c.typing, recs)
			}
			if last := recs[len(recs)-1]; last.Kind != bottest.KindText {
				t.Errorf("something came after the reply: %v", last)
			}
			// The bot's requests use its own CSeq space, increasing.
			for i := 1; i < len(recs); i++ {
				if recs[i].CSeq <= recs[i-1].CSeq {
					t.Errorf("CSeq not increasing: %v then %v", recs[i-1], recs[i])
				}
			}
			if err := s.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "session.end:bye")
			// The dialog is gone: requests in it get 481.
			res, err := s.SendRaw(ctx, "MESSAGE", "text/plain", []byte("late"))
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 481 {
				t.Errorf("MESSAGE after BYE answered %d, want 481", res.StatusCode)
			}
			want := "session.start|typing:true|message:what time is it?|session.end:bye"
			if got := strings.Join(rec.snapshot(), "|"); got != want {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

func TestSessionOrderUnderBurst(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			rec := newRecorder()
			r := startBot(t, bot.Config{}, rec)
			p := newPeer(t, r, network, bottest.Options{})
			ctx := testCtx(t)
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			texts := make([]string, 50)
			for i := range texts {
				texts[i] = fmt.Sprintf("m%02d", i)
			}
			if err := s.SendBurst(ctx, texts); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "message:m49")
			var got []string
			for _, e := range rec.snapshot() {
				if strings.HasPrefix(e, "message:") {
					got = append(got, strings.TrimPrefix(e, "message:"))
				}
			}
			if strings.Join(got, ",") != strings.Join(texts, ",") {
				t.Errorf("handled out of order:\n got %v\nwant %v", got, texts)
			}
		})
	}
}

func TestSessionRefusals(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)

	audio := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
	msrp := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=chat\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 2855 TCP/MSRP *\r\na=path:msrp://127.0.0.1:2855/x;tcp\r\n")
	for name, sdp := range map[string][]byte{"audio": audio, "msrp": msrp, "no body": nil} {
		t.Run(name, func(t *testing.T) {
			_, res, err := p.Invite(ctx, sdp)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 488 {
				t.Errorf("INVITE answered %d, want 488", res.StatusCode)
			}
		})
	}
	t.Run("x-ms-message accepted", func(t *testing.T) {
		offer := []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=x-ms-message 5060 sip null\r\na=accept-types:text/plain\r\n")
		s, res, err := p.Invite(ctx, offer, p.DialectHeaders(bottest.DialectMS)...)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || !strings.Contains(string(s.SDP()), "m=x-ms-message") {
			t.Fatalf("answered %d with SDP %q", res.StatusCode, s.SDP())
		}
		if _, err := s.Send(ctx, "legacy"); err != nil {
			t.Fatal(err)
		}
		// KeyboardActivity for a Microsoft-style session whose accept-types lack isComposing.
		if _, err := s.Wait(ctx, func(rc bottest.Record) bool {
			return rc.Kind == bottest.KindTyping && rc.Dialect == bottest.DialectMS
		}); err != nil {
			t.Error(err)
		}
		if _, err := s.WaitText(ctx, "echo: legacy"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown in-dialog type", func(t *testing.T) {
		s, err := p.OpenSession(ctx, bottest.DialectMS)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.SendRaw(ctx, "MESSAGE", "text/x-msmsgsinvite", []byte("Invitation-Command: INVITE"))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 415 || res.GetHeader("Accept") == nil {
			t.Errorf("answered %d (Accept %v), want 415 with Accept", res.StatusCode, res.GetHeader("Accept"))
		}
		// The session goes on.
		if _, err := s.Send(ctx, "after"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitText(ctx, "echo: after"); err != nil {
			t.Fatal(err)
		}
		res, err = s.SendRaw(ctx, "INVITE", "application/sdp", p.OfferSDP(bottest.DialectMS.AcceptTypes()...))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "m=message") {
			t.Errorf("re-INVITE answered %d %q, want 200 with the same answer", res.StatusCode, res.Body())
		}
		// A re-INVITE that would turn the session into an audio call is refused; the
		// session goes on.
		audio := "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
		if res, err = s.SendRaw(ctx, "INVITE", "application/sdp", []byte(audio)); err != nil || res.StatusCode != 488 {
			t.Errorf("audio re-INVITE answered %v, %v; want 488", res, err)
		}
		if _, err := s.Send(ctx, "still here"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitText(ctx, "echo: still here"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSessionCancelBeforeAnswer(t *testing.T) {
	admitted := make(chan struct{})
	cancelled := make(chan error, 1)
	var first sync.Once
	cfg := bot.Config{Admit: func(ctx context.Context, peer bot.Peer, mode bot.Mode) error {
		hold := false
		first.Do(func() { hold = true })
		if !hold {
			return nil
		}
		close(admitted)
		<-ctx.Done() // held until the caller gives up
		cancelled <- ctx.Err()
		return ctx.Err()
	}}
	r := startBot(t, cfg, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	octx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := p.OpenSession(octx, bottest.DialectMS)
		errc <- err
	}()
	select {
	case <-admitted:
	case <-ctx.Done():
		t.Fatal("INVITE never reached Admit")
	}
	cancel() // the peer sends CANCEL: the bot sent 100 Trying while Admit ran
	if err := <-errc; err == nil {
		t.Fatal("session opened although the caller cancelled")
	}
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Admit's context ended with %v, want Canceled (by the CANCEL)", err)
		}
	case <-ctx.Done():
		t.Fatal("the CANCEL did not reach the pending INVITE")
	}
	// The bot still works normally.
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitText(ctx, "echo: hi"); err != nil {
		t.Fatal(err)
	}
}

func TestAdmitRefusal(t *testing.T) {
	cfg := bot.Config{Admit: func(ctx context.Context, peer bot.Peer, mode bot.Mode) error {
		if peer.User == "mallory" {
			return &bot.Refusal{Code: 403}
		}
		return nil
	}}
	r := startBot(t, cfg, newRecorder())
	ctx := testCtx(t)
	bad := newPeer(t, r, "udp", bottest.Options{User: "mallory"})
	_, err := bad.OpenSession(ctx, bottest.DialectMS)
	var se *bottest.StatusError
	if !errors.As(err, &se) || se.Code != 403 {
		t.Errorf("mallory's INVITE: %v, want 403", err)
	}
	if res, err := bad.SendPage(ctx, "hi"); err != nil || res.StatusCode != 403 {
		t.Errorf("mallory's MESSAGE: %v %v, want 403", res, err)
	}
	good := newPeer(t, r, "udp", bottest.Options{User: "alice"})
	if _, err := good.SendPage(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := good.WaitText(ctx, "echo: hi"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownDialog(t *testing.T) {
	r := startBot(t, bot.Config{}, newRecorder())
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	// Another peer's session state is unknown to the bot after this one ends.
	if err := s.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"MESSAGE", "INFO", "BYE"} {
		res, err := s.SendRaw(ctx, method, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 481 {
			t.Errorf("%s in an unknown dialog answered %d, want 481", method, res.StatusCode)
		}
	}
}

func TestTypingContract(t *testing.T) {
	for _, d := range []bottest.Dialect{bottest.DialectMS, bottest.DialectIETF} {
		t.Run(d.String(), func(t *testing.T) {
			proceed := make(chan struct{})
			rec := newRecorder()
			rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
				if ev.Kind != bot.EventMessage {
					return false, nil
				}
				switch ev.Text {
				case "slow":
					<-proceed // the bot "works": typing must be refreshed meanwhile
				case "silent":
					return true, nil // no reply: typing must end with idle
				case "two":
					if err := w.Reply(ctx, "first"); err != nil {
						return true, err
					}
					if err := w.Typing(ctx); err != nil {
						return true, err
					}
					return true, w.Reply(ctx, "second")
				}
				return false, nil
			}
			cfg := bot.Config{Typing: bot.TypingConfig{RefreshMS: 50 * time.Millisecond, Refresh: 90 * time.Millisecond}}
			r := startBot(t, cfg, rec)
			p := newPeer(t, r, "udp", bottest.Options{})
			ctx := testCtx(t)
			s, err := p.OpenSession(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Typing(ctx, true); err != nil { // mirror: the peer's dialect
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "slow"); err != nil {
				t.Fatal(err)
			}
			// Wait for three refreshes, then let the handler reply.
			for n := 1; n <= 3; n++ {
				if _, err := s.Wait(ctx, func(bottest.Record) bool {
					c := 0
					for _, rc := range s.Records() {
						if rc.Kind == bottest.KindTyping && rc.Active {
							c++
						}
					}
					return c >= n
				}); err != nil {
					t.Fatal(err)
				}
			}
			close(proceed)
			if _, err := s.WaitText(ctx, "echo: slow"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "silent"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Wait(ctx, bottest.IsTyping(false)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "two"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.WaitText(ctx, "second"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "last"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.WaitText(ctx, "echo: last"); err != nil {
				t.Fatal(err)
			}
			if err := s.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "session.end:bye")

			// Walk the records: typing is active only between a message and its reply.
			var seq []string
			for _, rc := range s.Records() {
				switch {
				case rc.Kind == bottest.KindTyping && rc.Dialect != d:
					t.Errorf("typing in the wrong dialect: %v", rc)
				case rc.Kind == bottest.KindTyping && rc.Active:
					if len(seq) == 0 || seq[len(seq)-1] != "typing" {
						seq = append(seq, "typing")
					}
				case rc.Kind == bottest.KindTyping:
					seq = append(seq, "idle")
				case rc.Kind == bottest.KindText:
					seq = append(seq, rc.Text)
				}
			}
			want := "typing|echo: slow|typing|idle|typing|first|typing|second|typing|echo: last"
			if got := strings.Join(seq, "|"); got != want {
				t.Errorf("typing and replies:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestHandlerFailureIsContained(t *testing.T) {
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		switch ev.Text {
		case "panic":
			panic("handler bug")
		case "error":
			return true, errors.New("backend down")
		}
		return false, nil
	}
	r := startBot(t, bot.Config{Apology: "Oops (%s)"}, rec)
	p := newPeer(t, r, "tcp", bottest.Options{})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	// nextText sends text and returns the next text the bot sends back.
	nextText := func(text string) string {
		t.Helper()
		before := len(p.Texts())
		if _, err := s.Send(ctx, text); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(ctx, func(bottest.Record) bool { return len(p.Texts()) > before }); err != nil {
			t.Fatalf("no answer to %q: %v", text, err)
		}
		return p.Texts()[before]
	}
	for _, text := range []string{"panic", "error"} {
		got := nextText(text)
		if !strings.HasPrefix(got, "Oops (") || len(got) != len("Oops (12345678)") {
			t.Errorf("after a %s: %q, want the apology with its correlation ID", text, got)
		}
		if got := nextText("ok"); got != "echo: ok" {
			t.Fatalf("the bot stopped answering after a %s: %q", text, got)
		}
	}
}

func TestDeadDialogEndsSession(t *testing.T) {
	rec := newRecorder()
	r := startBot(t, bot.Config{}, rec)
	p := newPeer(t, r, "udp", bottest.Options{Respond: func(req *sip.Request) int {
		if req.Method == sip.MESSAGE {
			return 481
		}
		return 0
	}})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectIETF)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "hello?"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "session.end:dead")
	res, err := s.SendRaw(ctx, "MESSAGE", "text/plain", []byte("anyone?"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 481 {
		t.Errorf("dialog still known after a 481: answered %d", res.StatusCode)
	}
}

func TestEndFromHandler(t *testing.T) {
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Text == "bye" {
			w.End()
			return true, w.Reply(ctx, "Goodbye")
		}
		return false, nil
	}
	r := startBot(t, bot.Config{}, rec)
	p := newPeer(t, r, "tcp", bottest.Options{})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ended():
	case <-ctx.Done():
		t.Fatal("the bot did not send BYE")
	}
	recs := s.Records()
	if len(recs) < 2 || recs[len(recs)-2].Text != "Goodbye" || recs[len(recs)-1].Kind != bottest.KindBye {
		t.Errorf("want the reply then BYE, got %v", recs)
	}
	rec.waitFor(t, "session.end:closed")
}

func TestIdleTimeout(t *testing.T) {
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventIdle {
			return true, w.Reply(ctx, "Closing this chat, write again any time.")
		}
		return false, nil
	}
	r := startBot(t, bot.Config{IdleTimeout: 300 * time.Millisecond}, rec)
	p := newPeer(t, r, "udp", bottest.Options{})
	ctx := testCtx(t)
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ended():
	case <-ctx.Done():
		t.Fatal("idle session not ended")
	}
	rec.waitFor(t, "session.end:idle")
	recs := s.Records()
	if len(recs) < 2 || recs[len(recs)-2].Kind != bottest.KindText || recs[len(recs)-1].Kind != bottest.KindBye {
		t.Errorf("want the farewell then BYE, got %v", recs)
	}
	// Page mode: the conversation is forgotten; the next message starts a new one.
	if _, err := p.SendPage(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "message:hi")
	if _, err := p.WaitText(ctx, "echo: hi"); err != nil {
		t.Fatal(err)
	}
}

func TestPeerVanishesMidSession(t *testing.T) {
	sessions := make(chan bot.Conversation, 1)
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventSessionStart {
			sessions <- ev.Session
		}
		return false, nil
	}
	r := startBot(t, bot.Config{RequestTimeout: time.Second}, rec)
	p := newPeer(t, r, "tcp", bottest.Options{})
	ctx := testCtx(t)
	if _, err := p.OpenSession(ctx, bottest.DialectMS); err != nil {
		t.Fatal(err)
	}
	s := <-sessions
	p.Close() // the client disappears: its connection and its listener close, no BYE
	err := s.Send(ctx, "are you there?")
	if err == nil {
		t.Fatal("a message to a vanished peer was reported as sent")
	}

	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatalf("the session of a vanished peer stays open (send: %v)", err)
	}
	rec.waitFor(t, "session.end:dead")
}
