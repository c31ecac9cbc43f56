package bot_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// TestOverloadAnswers503 fills the bot past MaxQueued while its only worker is held: new
// messages get 503 with Retry-After instead of a 200 the bot could not honour, and every
// message answered 200 is handled once the worker is free.
func TestOverloadAnswers503(t *testing.T) {
	release := make(chan struct{})
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Text == "hold" {
			<-release
		}
		return ev.Kind == bot.EventMessage, nil // no replies: the peers need not answer
	}
	// A long queue delay: only the count bounds admission here.
	r := startBot(t, bot.Config{MaxWorkers: 1, MaxQueued: 6, MaxQueueDelay: time.Hour}, rec)
	ctx := testCtx(t)
	holder := newPeer(t, r, "udp", bottest.Options{User: "holder"})
	if res, err := holder.SendPage(ctx, "hold"); err != nil || res.StatusCode != 200 {
		t.Fatalf("hold answered %v, %v", res, err)
	}
	rec.waitFor(t, "message:hold")
	var accepted []string
	refused := 0
	for i := range 10 {
		p := newPeer(t, r, "udp", bottest.Options{User: fmt.Sprintf("user%d", i)})
		text := fmt.Sprintf("m%d", i)
		res, err := p.SendPage(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		switch res.StatusCode {
		case 200:
			accepted = append(accepted, text)
		case 503:
			refused++
			if res.GetHeader("Retry-After") == nil {
				t.Errorf("503 without Retry-After")
			}
		default:
			t.Fatalf("%s answered %d", text, res.StatusCode)
		}
	}
	if refused == 0 || len(accepted) == 0 {
		t.Fatalf("%d accepted, %d refused: want both past MaxQueued", len(accepted), refused)
	}
	close(release)
	for _, text := range accepted {
		rec.waitFor(t, "message:"+text)
	}
	// A message refused is never handled.
	for _, e := range rec.snapshot() {
		if strings.HasPrefix(e, "message:m") && !containsString(accepted, strings.TrimPrefix(e, "message:")) {
			t.Errorf("refused message handled: %s", e)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPageConversationsEvicted checks that one-shot page senders cannot fill the bot: past
// MaxPageConversations the idlest conversation ends (EndEvicted) to make room, and IM
// sessions, counted apart, are still accepted.
func TestPageConversationsEvicted(t *testing.T) {
	rec := newRecorder()
	r := startBot(t, bot.Config{MaxPageConversations: 2, MaxSessions: 5}, rec)
	ctx := testCtx(t)
	for i := range 4 {
		p := newPeer(t, r, "udp", bottest.Options{User: fmt.Sprintf("once%d", i)})
		for {
			res, err := p.SendPage(ctx, "hi")
			if err == nil && res.StatusCode == 503 && res.GetHeader("Retry-After") != nil {
				// Only conversations with no work are evicted: the previous one's worker
				// may not have finished yet. Try again, as the Retry-After says.
				select {
				case <-ctx.Done():
					t.Fatalf("sender %d: 503 until the deadline", i)
				case <-time.After(5 * time.Millisecond):
				}
				continue
			}
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("sender %d answered %v, %v; want 200", i, res, err)
			}
			break
		}
		if _, err := p.WaitText(ctx, "echo: hi"); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "session.end:evicted")
	n := 0
	for _, e := range rec.snapshot() {
		if e == "session.end:evicted" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d conversations evicted, want 2 (4 senders, room for 2): %v", n, rec.snapshot())
	}
	s, err := newPeer(t, r, "udp", bottest.Options{User: "caller"}).OpenSession(ctx, bottest.DialectIETF)
	if err != nil {
		t.Fatalf("an IM session with page conversations at their cap: %v", err)
	}
	_ = s.Bye(ctx)
}

// TestShutdownHandlesEveryAcceptedMessage sends a burst from many peers and stops the bot
// in the middle of it: every message answered 200 reaches the handler before Run returns,
// and the others were answered 503.
func TestShutdownHandlesEveryAcceptedMessage(t *testing.T) {
	var (
		mu      sync.Mutex
		handled = map[string]bool{}
	)
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventMessage {
			time.Sleep(time.Millisecond) // some work, so that a backlog forms
			mu.Lock()
			handled[ev.Session.Peer().User+"/"+ev.Text] = true
			mu.Unlock()
		}
		return ev.Kind == bot.EventMessage, nil
	}
	r := startBot(t, bot.Config{MaxWorkers: 2}, rec)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	const peers, each = 20, 15
	var (
		wg       sync.WaitGroup
		amu      sync.Mutex
		accepted []string
		started  = make(chan struct{})
		once     sync.Once
	)
	for i := range peers {
		p := newPeer(t, r, "udp", bottest.Options{User: fmt.Sprintf("burst%d", i)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				text := fmt.Sprintf("n%d", j)
				res, err := p.SendPage(ctx, text)
				if err != nil {
					return // the bot is gone
				}
				if res.StatusCode == 200 {
					amu.Lock()
					accepted = append(accepted, fmt.Sprintf("burst%d/%s", i, text))
					amu.Unlock()
					if j == 2 {
						once.Do(func() { close(started) })
					}
				} else if res.StatusCode != 503 {
					t.Errorf("%s answered %d, want 200 or 503", text, res.StatusCode)
				}
			}
		}()
	}
	<-started
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	cancel() // requests still waiting for the stopped bot give up
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for _, a := range accepted {
		if !handled[a] {
			missing++
			t.Errorf("answered 200 but never handled: %s", a)
		}
	}
	t.Logf("%d messages answered 200, all handled before Run returned (%d missing)", len(accepted), missing)
}

// TestConcurrentSendsKeepCSeqOrder sends from many goroutines at once in one IM session
// (Session.Send is safe for concurrent use): every request gets its own CSeq, and they leave
// the bot in CSeq order.
func TestConcurrentSendsKeepCSeqOrder(t *testing.T) {
	const senders = 16
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind != bot.EventMessage {
			return false, nil
		}
		var wg sync.WaitGroup
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ev.Session.Send(ctx, fmt.Sprintf("notice %d", i)); err != nil {
					t.Errorf("Send: %v", err)
				}
			}()
		}
		wg.Wait()
		return true, nil
	}
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			r := startBot(t, bot.Config{}, rec)
			ctx := testCtx(t)
			p := newPeer(t, r, network, bottest.Options{})
			s, err := p.OpenSession(ctx, bottest.DialectIETF)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "go"); err != nil {
				t.Fatal(err)
			}
			for i := range senders {
				if _, err := s.WaitText(ctx, fmt.Sprintf("notice %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			var seqs []uint32
			for _, rc := range s.Records() {
				seqs = append(seqs, rc.CSeq)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("CSeq on the wire not strictly increasing: %v", seqs)
				}
			}
			_ = s.Bye(ctx)
		})
	}
}

// TestSendStopsTyping checks that a message sent with Session.Send from a handler ends the
// bot's automatic typing like a Reply does: no "active" refresh follows it while the handler
// goes on working, and no idle either (the message ended typing for the peer).
func TestSendStopsTyping(t *testing.T) {
	sent := make(chan struct{})
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind != bot.EventMessage {
			return false, nil
		}
		if err := ev.Session.Send(ctx, "working on it"); err != nil {
			return true, err
		}
		close(sent)
		// Work on for several refresh periods.
		time.Sleep(10 * 40 * time.Millisecond)
		return true, nil
	}
	r := startBot(t, bot.Config{Typing: bot.TypingConfig{RefreshMS: 40 * time.Millisecond, Refresh: 60 * time.Millisecond}}, rec)
	ctx := testCtx(t)
	p := newPeer(t, r, "udp", bottest.Options{})
	s, err := p.OpenSession(ctx, bottest.DialectMS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "slow question"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitText(ctx, "working on it"); err != nil {
		t.Fatal(err)
	}
	<-sent
	rec.waitFor(t, "message:slow question")
	// The handler has returned once BYE's end event is handled after it.
	if err := s.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "session.end:bye")
	recs := s.Records()
	after := false
	for _, rc := range recs {
		if rc.Kind == bottest.KindText {
			after = true
			continue
		}
		if after && rc.Kind == bottest.KindTyping {
			t.Errorf("typing sent after the message: %v (all: %v)", rc, recs)
		}
	}
}
