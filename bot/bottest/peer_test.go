package bottest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot/bottest"
)

var transports = []bottest.Transport{bottest.UDP, bottest.TCP}

// setup starts a responder and a peer talking to it over tp.
func setup(t *testing.T, tp bottest.Transport, opts bottest.Options) (*responder, *bottest.Peer) {
	t.Helper()
	r, err := startResponder(string(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close) // runs after the peer's Close
	opts.Bot = r.addr
	opts.Transport = tp
	return r, bottest.NewPeer(t, opts)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func checkOrdered(t *testing.T, recs []bottest.Record) {
	t.Helper()
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Errorf("record %d (%v) is earlier than record %d (%v)", i, recs[i].Time, i-1, recs[i-1].Time)
		}
	}
}

func TestNewPeer(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			p := bottest.NewPeer(t, bottest.Options{Bot: "127.0.0.1:9", Transport: tp})
			if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || strings.HasSuffix(p.Addr(), ":5060") {
				t.Errorf("Addr() = %q", p.Addr())
			}
			if want := "sip:alice@" + p.Addr(); p.URI() != want {
				t.Errorf("URI() = %q, want %q", p.URI(), want)
			}
			if want := "sip:alice@" + p.Addr() + ";transport=" + string(tp); p.Contact() != want {
				t.Errorf("Contact() = %q, want %q", p.Contact(), want)
			}
		})
	}
	if _, err := bottest.Start(bottest.Options{}); err == nil {
		t.Error("Start without Bot succeeded")
	}
	if _, err := bottest.Start(bottest.Options{Bot: "127.0.0.1:9", Transport: "sctp"}); err == nil {
		t.Error("Start with transport sctp succeeded")
	}
}

func TestPage(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, p := setup(t, tp, bottest.Options{DisplayName: "Alice"})
			ctx := testContext(t)
			start := time.Now()
			res, err := p.SendPage(ctx, "hello")
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("SendPage: %v %v", res, err)
			}
			rec, err := p.WaitText(ctx, "echo: hello")
			if err != nil {
				t.Fatal(err)
			}
			if rec.InDialog || rec.Method != "MESSAGE" || rec.Status != 200 || rec.CallID == "" ||
				rec.Time.Before(start) || rec.Time.After(time.Now()) || rec.Request == nil {
				t.Errorf("record = %+v", rec)
			}
			if got := p.Texts(); !slices.Equal(got, []string{"echo: hello"}) {
				t.Errorf("Texts() = %q", got)
			}

			msgs := r.Received(sip.MESSAGE)
			if len(msgs) != 1 {
				t.Fatalf("responder got %d MESSAGEs", len(msgs))
			}
			m := msgs[0]
			if got := m.From().Address.String(); got != p.URI() {
				t.Errorf("From = %q, want %q", got, p.URI())
			}
			if m.From().DisplayName != "Alice" {
				t.Errorf("From display name = %q", m.From().DisplayName)
			}
			if _, ok := m.From().Params.Get("tag"); !ok {
				t.Error("From has no tag")
			}
			if _, ok := m.To().Params.Get("tag"); ok {
				t.Error("page MESSAGE has a To-tag")
			}
			if got, want := m.Recipient.String(), "sip:bot@"+r.addr; got != want {
				t.Errorf("Request-URI = %q, want %q", got, want)
			}
			if got := m.ContentType().Value(); got != "text/plain;charset=UTF-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if string(m.Body()) != "hello" {
				t.Errorf("body = %q", m.Body())
			}
			if m.GetHeader("Accept") != nil {
				t.Error("Accept sent without AcceptComposing")
			}
			if via := m.Via(); via.Host != "127.0.0.1" || fmt.Sprintf("127.0.0.1:%d", via.Port) != p.Addr() {
				t.Errorf("Via = %s", via.Value())
			}
			if tp == bottest.UDP && m.Source() != p.Addr() {
				t.Errorf("UDP request left from %s, not from the listener %s", m.Source(), p.Addr())
			}
		})
	}
}

func TestPageTyping(t *testing.T) {
	for _, tp := range transports {
		for _, refuse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/refuse=%v", tp, refuse), func(t *testing.T) {
				r, p := setup(t, tp, bottest.Options{AcceptComposing: true, RefuseComposing: refuse})
				ctx := testContext(t)
				if res, err := p.SendPage(ctx, "hi"); err != nil || res.StatusCode != 200 {
					t.Fatalf("SendPage: %v %v", res, err)
				}
				text, err := p.WaitText(ctx, "echo: hi")
				if err != nil {
					t.Fatal(err)
				}
				typing, err := p.Wait(ctx, bottest.IsTyping(true))
				if err != nil {
					t.Fatal(err)
				}
				if typing.Dialect != bottest.DialectIETF || typing.Method != "MESSAGE" || typing.InDialog {
					t.Errorf("typing = %+v", typing)
				}
				if !typing.Time.Before(text.Time) {
					t.Errorf("typing at %v, text at %v", typing.Time, text.Time)
				}
				recs := p.Records()
				if len(recs) != 2 || recs[0].Kind != bottest.KindTyping || recs[1].Kind != bottest.KindText {
					t.Errorf("records = %v", recs)
				}
				checkOrdered(t, recs)

				wantStatus := 200
				if refuse {
					wantStatus = 415
				}
				if typing.Status != wantStatus {
					t.Errorf("typing answered %d, want %d", typing.Status, wantStatus)
				}
				sent := r.Sent(ctx, 2)
				if len(sent) != 2 || sent[0].status != wantStatus || sent[1].status != 200 {
					t.Errorf("responder sent %+v", sent)
				}
				accept := r.Received(sip.MESSAGE)[0].GetHeader("Accept")
				if accept == nil || accept.Value() != "text/plain, application/im-iscomposing+xml" {
					t.Errorf("Accept = %v", accept)
				}

				// And the other way round.
				if res, err := p.SendPageTyping(ctx, true); err != nil || res.StatusCode != 200 {
					t.Fatalf("SendPageTyping: %v %v", res, err)
				}
				msgs := r.Received(sip.MESSAGE)
				m := msgs[len(msgs)-1]
				if m.ContentType().Value() != "application/im-iscomposing+xml" ||
					!strings.Contains(string(m.Body()), "<state>active</state>") {
					t.Errorf("typing MESSAGE: %s", m)
				}
			})
		}
	}
}

func TestSession(t *testing.T) {
	for _, tp := range transports {
		for _, d := range []bottest.Dialect{bottest.DialectMS, bottest.DialectIETF} {
			t.Run(fmt.Sprintf("%s/%s", tp, d), func(t *testing.T) {
				r, p := setup(t, tp, bottest.Options{})
				ctx := testContext(t)
				s, err := p.OpenSession(ctx, d)
				if err != nil {
					t.Fatal(err)
				}
				if s.Dialect() != d || s.CallID() == "" || s.Incoming() {
					t.Errorf("session: dialect %v, Call-ID %q", s.Dialect(), s.CallID())
				}
				if want := "sip:bot@127.0.0.1:" + r.addr[strings.LastIndex(r.addr, ":")+1:] + ";transport=" + string(tp); s.Target() != want {
					t.Errorf("Target() = %q, want %q", s.Target(), want)
				}
				if !strings.Contains(string(s.SDP()), "m=message") {
					t.Errorf("SDP() = %q", s.SDP())
				}
				checkInvite(t, r.Received(sip.INVITE)[0], p, d)

				res, err := s.Send(ctx, "hello")
				if err != nil || res.StatusCode != 200 {
					t.Fatalf("Send: %v %v", res, err)
				}
				text, err := s.WaitText(ctx, "echo: hello")
				if err != nil {
					t.Fatal(err)
				}
				typing, err := s.Wait(ctx, bottest.IsKind(bottest.KindTyping))
				if err != nil {
					t.Fatal(err)
				}
				wantMethod := map[bottest.Dialect]string{bottest.DialectMS: "INFO", bottest.DialectIETF: "MESSAGE"}[d]
				if !typing.Active || typing.Dialect != d || typing.Method != wantMethod || !typing.InDialog ||
					typing.CallID != s.CallID() || typing.Status != 200 {
					t.Errorf("typing = %+v", typing)
				}
				if d == bottest.DialectIETF && typing.Refresh != 60*time.Second {
					t.Errorf("refresh = %v", typing.Refresh)
				}
				if !text.InDialog || text.CallID != s.CallID() || !typing.Time.Before(text.Time) || text.CSeq <= typing.CSeq {
					t.Errorf("text = %+v after typing %+v", text, typing)
				}
				if got := s.Records(); len(got) != 2 {
					t.Errorf("session records = %v", got)
				}
				checkOrdered(t, p.Records())

				m := r.Received(sip.MESSAGE)[0]
				if string(m.Body()) != "hello" || !strings.HasPrefix(m.ContentType().Value(), "text/plain") {
					t.Errorf("MESSAGE: %s", m)
				}
				if d == bottest.DialectMS && !strings.Contains(m.ContentType().Value(), "msgr=") {
					t.Errorf("MS Content-Type %q has no msgr", m.ContentType().Value())
				}
				if got, want := m.Recipient.String(), s.Target(); got != want {
					t.Errorf("in-dialog Request-URI = %q, want %q", got, want)
				}

				// Typing from the peer.
				for _, active := range []bool{true, false} {
					if res, err := s.Typing(ctx, active); err != nil || res.StatusCode != 200 {
						t.Fatalf("Typing(%v): %v %v", active, res, err)
					}
				}
				var typings []*sip.Request
				if d == bottest.DialectMS {
					typings = r.Received(sip.INFO)
				} else {
					typings = r.Received(sip.MESSAGE)[1:]
				}
				if len(typings) != 2 {
					t.Fatalf("responder got %d typing requests", len(typings))
				}
				want := []string{`status="type"`, `status="idle"`}
				if d == bottest.DialectIETF {
					want = []string{"<state>active</state>", "<state>idle</state>"}
				}
				for i, req := range typings {
					if !strings.Contains(string(req.Body()), want[i]) {
						t.Errorf("typing %d: %s", i, req.Body())
					}
				}

				if err := s.Bye(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case <-s.Ended():
				default:
					t.Error("session not ended after Bye")
				}
				if err := s.Bye(ctx); !errors.Is(err, bottest.ErrSessionEnded) {
					t.Errorf("second Bye: %v", err)
				}
				// In-dialog requests may still be sent, to test the bot's 481.
				if res, err := s.Send(ctx, "late"); err != nil || res.StatusCode != 481 {
					t.Errorf("Send after BYE: %v %v", res, err)
				}
			})
		}
	}
}

// checkInvite checks the INVITE the responder received from the peer.
func checkInvite(t *testing.T, inv *sip.Request, p *bottest.Peer, d bottest.Dialect) {
	t.Helper()
	body := string(inv.Body())
	port := p.Addr()[strings.LastIndex(p.Addr(), ":")+1:]
	if !strings.Contains(body, "m=message "+port+" sip null\r\n") {
		t.Errorf("SDP offer:\n%s", body)
	}
	wantTypes := "a=accept-types:text/plain application/im-iscomposing+xml\r\n"
	if d == bottest.DialectMS {
		wantTypes = "a=accept-types:text/plain text/html multipart/alternative application/im-iscomposing+xml\r\n"
	}
	if !strings.Contains(body, wantTypes) {
		t.Errorf("SDP offer has no %q:\n%s", wantTypes, body)
	}
	if inv.ContentType().Value() != "application/sdp" {
		t.Errorf("Content-Type = %s", inv.ContentType().Value())
	}
	if got := inv.Contact().Address.String(); got != p.Contact() {
		t.Errorf("Contact = %q, want %q", got, p.Contact())
	}
	_, epid := inv.From().Params.Get("epid")
	ms := inv.GetHeader("Ms-Conversation-ID") != nil
	if d == bottest.DialectIETF {
		if epid || ms || inv.GetHeader("ms-text-format") != nil {
			t.Errorf("IETF INVITE has ms-* headers:\n%s", inv)
		}
		return
	}
	if !epid || !ms {
		t.Errorf("MS INVITE lacks epid or Ms-Conversation-ID:\n%s", inv)
	}
	var supported []string
	for _, h := range inv.GetHeaders("Supported") {
		supported = append(supported, h.Value())
	}
	if !slices.Contains(supported, "ms-sender") {
		t.Errorf("Supported = %q", supported)
	}
	tf := inv.GetHeader("ms-text-format")
	if tf == nil || !strings.Contains(tf.Value(), "ms-body="+base64.StdEncoding.EncodeToString([]byte(bottest.FirstLine))) {
		t.Errorf("ms-text-format = %v", tf)
	}
}

func TestBotBye(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, p := setup(t, tp, bottest.Options{})
			ctx := testContext(t)
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "bye"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Ended():
			case <-ctx.Done():
				t.Fatal("session did not end")
			}
			bye, err := s.Wait(ctx, bottest.IsKind(bottest.KindBye))
			if err != nil {
				t.Fatal(err)
			}
			if bye.Method != "BYE" || bye.Status != 200 || !bye.InDialog {
				t.Errorf("BYE record = %+v", bye)
			}
			text, _ := s.WaitText(ctx, "echo: bye")
			if !text.Time.Before(bye.Time) {
				t.Error("BYE recorded before the echo")
			}
			// The dialog is gone: the peer answers 481.
			res, err := r.SendInDialog(s.CallID(), "anyone?")
			if err != nil || res.StatusCode != 481 {
				t.Fatalf("in-dialog MESSAGE after BYE: %v %v", res, err)
			}
			late, err := p.WaitText(ctx, "anyone?")
			if err != nil || late.Status != 481 || !late.InDialog {
				t.Errorf("late record %+v, %v", late, err)
			}
		})
	}
}

func TestInviteRefused(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			_, p := setup(t, tp, bottest.Options{})
			ctx := testContext(t)
			audio := []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
			s, res, err := p.Invite(ctx, audio)
			if err != nil {
				t.Fatal(err)
			}
			if s != nil || res.StatusCode != 488 {
				t.Errorf("Invite(audio) = %v, %v", s, res)
			}

			// A custom MS-flavoured INVITE that accepts only text/plain.
			s, res, err = p.Invite(ctx, p.OfferSDP("text/plain"), p.DialectHeaders(bottest.DialectMS)...)
			if err != nil || res.StatusCode != 200 || s == nil || s.Dialect() != bottest.DialectMS {
				t.Fatalf("Invite(MS): %v %v %v", s, res, err)
			}
			if err := s.Bye(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestOpenSessionRefused(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, err := startResponder(string(tp))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			p := bottest.NewPeer(t, bottest.Options{Bot: r.addr, Transport: tp, BotURI: "sip:busy@" + r.addr})
			_, err = p.OpenSession(testContext(t), bottest.DialectMS)
			var se *bottest.StatusError
			if !errors.As(err, &se) || se.Code != 486 || se.Method != "INVITE" || se.Response == nil {
				t.Fatalf("OpenSession to a busy bot: %v", err)
			}
			if want := "bottest: INVITE answered 486 Busy Here"; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestOpenSessionTimeout(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, err := startResponder(string(tp))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			p := bottest.NewPeer(t, bottest.Options{Bot: r.addr, Transport: tp, BotURI: "sip:slow@" + r.addr})
			ctx := testContext(t)
			sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = p.OpenSession(sctx, bottest.DialectIETF)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("OpenSession to a bot that never answers: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("OpenSession returned after %v", d)
			}
			select { // the peer CANCELs the INVITE it gave up on
			case <-r.cancels:
			case <-ctx.Done():
				t.Fatal("no CANCEL")
			}
			select { // and ACKs the 487
			case <-r.acks:
			case <-ctx.Done():
				t.Fatal("no ACK for the 487")
			}
		})
	}
}

func TestRespondOverride(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, p := setup(t, tp, bottest.Options{Respond: func(req *sip.Request) int {
				if strings.Contains(string(req.Body()), "busy") {
					return 486
				}
				return 0
			}})
			ctx := testContext(t)
			p.SendPage(ctx, "busy")
			rec, err := p.WaitText(ctx, "echo: busy")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != 486 {
				t.Errorf("status = %d", rec.Status)
			}
			if sent := r.Sent(ctx, 1); len(sent) != 1 || sent[0].status != 486 {
				t.Errorf("responder sent %+v", sent)
			}
		})
	}
}

func TestWaitTimeout(t *testing.T) {
	_, p := setup(t, bottest.UDP, bottest.Options{})
	ctx := testContext(t)
	if _, err := p.SendPage(ctx, "ping"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitText(ctx, "echo: ping"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := p.WaitText(wctx, "echo: pong")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("Wait returned after %v", d)
	}
	for _, want := range []string{"no matching request", "received 1 requests", `MESSAGE text "echo: ping", page mode, answered 200`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	t.Log(err)

	empty := bottest.NewPeer(t, bottest.Options{Bot: "127.0.0.1:9"})
	wctx2, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if _, err := empty.Wait(wctx2, bottest.IsKind(bottest.KindBye)); err == nil ||
		!strings.Contains(err.Error(), "nothing received from the bot") {
		t.Errorf("err = %v", err)
	}
}

func TestWaitFuture(t *testing.T) {
	_, p := setup(t, bottest.TCP, bottest.Options{})
	ctx := testContext(t)
	got := make(chan error, 1)
	go func() {
		_, err := p.WaitText(ctx, "echo: later")
		got <- err
	}()
	if _, err := p.SendPage(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestBurst(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, p := setup(t, tp, bottest.Options{})
			ctx := testContext(t)
			s, err := p.OpenSession(ctx, bottest.DialectMS)
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			texts := make([]string, n)
			for i := range texts {
				texts[i] = fmt.Sprintf("m%02d", i)
			}
			if err := s.SendBurst(ctx, texts); err != nil {
				t.Fatal(err)
			}
			for _, text := range texts {
				if _, err := s.WaitText(ctx, "echo: "+text); err != nil {
					t.Fatal(err)
				}
			}
			// Each its own transaction, CSeq increasing in the order of texts.
			bySeq := map[uint32]string{}
			for _, m := range r.Received(sip.MESSAGE) {
				bySeq[m.CSeq().SeqNo] = string(m.Body())
			}
			seqs := make([]uint32, 0, len(bySeq))
			for seq := range bySeq {
				seqs = append(seqs, seq)
			}
			slices.Sort(seqs)
			if len(seqs) != n {
				t.Fatalf("responder got %d distinct CSeqs, want %d", len(seqs), n)
			}
			for i, seq := range seqs {
				if bySeq[seq] != texts[i] {
					t.Errorf("CSeq %d carries %q, want %q", seq, bySeq[seq], texts[i])
				}
			}
			checkOrdered(t, p.Records())
		})
	}
}

func TestAcceptSessions(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			r, p := setup(t, tp, bottest.Options{AcceptSessions: true})
			ctx := testContext(t)
			offer := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
				"m=message 5060 sip null\r\na=accept-types:text/plain\r\n"
			dlg, err := r.Invite(ctx, p.Contact(), offer)
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.WaitSession(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Incoming() || s.Dialect() != bottest.DialectMS || !strings.Contains(string(s.SDP()), "m=message 5060") {
				t.Errorf("session %v %v %q", s.Incoming(), s.Dialect(), s.SDP())
			}
			if !strings.Contains(string(dlg.InviteResponse.Body()), "m=message") {
				t.Errorf("answer: %q", dlg.InviteResponse.Body())
			}
			if res, err := s.Send(ctx, "hi bot"); err != nil || res.StatusCode != 200 {
				t.Fatalf("Send: %v %v", res, err)
			}
			if res, err := s.Typing(ctx, true); err != nil || res.StatusCode != 200 {
				t.Fatalf("Typing: %v %v", res, err)
			}
			if err := dlg.Bye(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.Ended():
			case <-ctx.Done():
				t.Fatal("session did not end")
			}
			inv, err := p.Wait(ctx, func(r bottest.Record) bool { return r.Method == "INVITE" })
			if err != nil || inv.Status != 200 || inv.Kind != bottest.KindOther {
				t.Errorf("INVITE record %+v %v", inv, err)
			}

			// Without AcceptSessions the peer is unavailable.
			q := bottest.NewPeer(t, bottest.Options{Bot: r.addr, Transport: tp})
			_, err = r.Invite(ctx, q.Contact(), offer)
			if err == nil || !strings.Contains(err.Error(), "480") {
				t.Errorf("INVITE to a peer without AcceptSessions: %v", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			_, p := setup(t, tp, bottest.Options{})
			ctx := testContext(t)
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			waitErr := make(chan error, 1)
			go func() {
				_, err := p.WaitText(ctx, "never")
				waitErr <- err
			}()
			p.Close()
			p.Close() // idempotent
			if err := <-waitErr; err == nil || !strings.Contains(err.Error(), "closed") {
				t.Errorf("Wait after Close: %v", err)
			}
			select {
			case <-s.Ended():
			default:
				t.Error("session not ended by Close")
			}
			if _, err := p.SendPage(ctx, "x"); err == nil {
				t.Error("SendPage after Close succeeded")
			}
			if _, err := s.Send(ctx, "x"); err == nil {
				t.Error("Send after Close succeeded")
			}
			if _, err := p.OpenSession(ctx, bottest.DialectMS); err == nil {
				t.Error("OpenSession after Close succeeded")
			}
		})
	}
}

func TestRecordDecoding(t *testing.T) {
	// Bodies the bot may send, delivered through the responder's
	// SendInDialog is overkill: page MESSAGEs from a raw sipgo client do.
	r, p := setup(t, bottest.TCP, bottest.Options{})
	ctx := testContext(t)
	cases := []struct {
		name, ctype, body string
		kind              bottest.Kind
		text              string
		active            bool
	}{
		{"plain", "text/plain; charset=UTF-8;msgr=abc", "héllo", bottest.KindText, "héllo", false},
		{"latin1", "text/plain;charset=ISO-8859-1", "h\xe9", bottest.KindText, "hé", false},
		{"html", "text/html", "<b>x</b>", bottest.KindText, "<b>x</b>", false},
		{"multipart", "multipart/alternative;boundary=XX",
			"--XX\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX--\r\n",
			bottest.KindText, "hi", false},
		{"cpim", "message/cpim",
			"From: <sip:bot@x>\r\nTo: <sip:a@x>\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\nvia cpim",
			bottest.KindText, "via cpim", false},
		{"composing idle", "application/im-iscomposing+xml",
			`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state></isComposing>`,
			bottest.KindTyping, "", false},
		{"composing without namespace", "application/im-iscomposing+xml",
			`<isComposing><state>active</state></isComposing>`, bottest.KindOther, "", false},
		{"imdn", "message/imdn+xml", "<imdn/>", bottest.KindOther, "", false},
	}
	for i, c := range cases {
		marker := fmt.Sprintf("case-%d", i)
		r.sendPage(sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: port(p.Addr()),
			UriParams: sip.HeaderParams{{K: "x", V: marker}}}, "TCP", c.ctype, c.body)
		rec, err := p.Wait(ctx, func(r bottest.Record) bool {
			v, _ := r.Request.Recipient.UriParams.Get("x")
			return v == marker
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rec.Kind != c.kind || rec.Text != c.text || rec.Active != c.active {
			t.Errorf("%s: got kind %v text %q active %v", c.name, rec.Kind, rec.Text, rec.Active)
		}
	}
}

func port(addr string) int {
	var p int
	fmt.Sscan(addr[strings.LastIndex(addr, ":")+1:], &p)
	return p
}

// TestAssertIdentityAndFrom: with AssertIdentity every request the peer starts carries
// P-Asserted-Identity with its own address (ACK and CANCEL aside); with From the requests
// claim another address, asserted by nothing.
func TestAssertIdentityAndFrom(t *testing.T) {
	const forged = "sip:ann@127.0.0.1:5999"
	tests := []struct {
		name     string
		opts     bottest.Options
		from     func(p *bottest.Peer) string
		asserted bool
	}{
		{"asserted", bottest.Options{AssertIdentity: true, DisplayName: "Ann"}, (*bottest.Peer).URI, true},
		{"forged From", bottest.Options{From: forged}, func(*bottest.Peer) string { return forged }, false},
		{"plain", bottest.Options{}, (*bottest.Peer).URI, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, p := setup(t, bottest.UDP, tt.opts)
			ctx := testContext(t)
			if res, err := p.SendPage(ctx, "hello"); err != nil || res.StatusCode != 200 {
				t.Fatalf("SendPage: %v %v", res, err)
			}
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			if res, err := s.Send(ctx, "in the dialog"); err != nil || res.StatusCode != 200 {
				t.Fatalf("Send: %v %v", res, err)
			}
			for _, m := range []sip.RequestMethod{sip.MESSAGE, sip.INVITE} {
				reqs := r.Received(m)
				if len(reqs) == 0 {
					t.Fatalf("responder got no %s", m)
				}
				for _, req := range reqs {
					if got, want := req.From().Address.String(), tt.from(p); got != want {
						t.Errorf("%s From = %q, want %q", m, got, want)
					}
					pai := req.GetHeader("P-Asserted-Identity")
					switch {
					case tt.asserted && (pai == nil || pai.Value() != `"Ann" <`+p.URI()+">"):
						t.Errorf("%s P-Asserted-Identity = %v, want \"Ann\" <%s>", m, pai, p.URI())
					case !tt.asserted && pai != nil:
						t.Errorf("%s carries P-Asserted-Identity %q", m, pai.Value())
					}
				}
			}
			for _, ack := range r.Received(sip.ACK) {
				if ack.GetHeader("P-Asserted-Identity") != nil {
					t.Error("ACK carries P-Asserted-Identity")
				}
			}
		})
	}
	if _, err := bottest.Start(bottest.Options{Bot: "127.0.0.1:9", From: "not an address"}); err == nil {
		t.Error("Start with a bad From succeeded")
	}
}
