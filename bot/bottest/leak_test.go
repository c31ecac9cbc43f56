package bottest_test

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
)

// sipgoGoroutines returns the IDs and stacks of the goroutines running sipgo
// or kit code, except the calling test's.
func sipgoGoroutines() map[int]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[int]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		own, _, _ := strings.Cut(g, "[originating from") // GODEBUG=tracebackancestors
		if !strings.Contains(own, "emiago/sipgo") && !strings.Contains(own, "bot/bottest.") ||
			strings.Contains(own, "TestNoGoroutineLeak") {
			continue
		}
		var id int
		if rest, ok := strings.CutPrefix(g, "goroutine "); ok {
			id, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ' ')])
		}
		out[id] = g
	}
	return out
}

// TestNoGoroutineLeak checks that a closed peer leaves no goroutine behind,
// open session included. Only goroutines started by this test count:
// earlier tests close their responders while requests may still be in
// flight, which can make sipgo leak a socket in the responder.
func TestNoGoroutineLeak(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
			before := sipgoGoroutines()
			ctx := testContext(t)
			r, err := startResponder(string(tp))
			if err != nil {
				t.Fatal(err)
			}
			p, err := bottest.Start(bottest.Options{Bot: r.addr, Transport: tp, AcceptComposing: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.SendPage(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			s, err := p.OpenSession(ctx, bottest.DialectMS)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Send(ctx, "y"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: y"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitText(ctx, "echo: x"); err != nil {
				t.Fatal(err)
			}
			started := 0
			for id := range sipgoGoroutines() {
				if _, old := before[id]; !old {
					started++
				}
			}
			if started == 0 {
				t.Fatal("the goroutine filter finds nothing")
			}
			p.Close() // the session is still open
			r.Close()

			// Goroutines exit asynchronously once their sockets are closed.
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(5 * time.Second)
			for {
				var left []string
				for id, g := range sipgoGoroutines() {
					if _, old := before[id]; !old {
						left = append(left, g)
					}
				}
				if len(left) == 0 {
					return
				}
				select {
				case <-tick.C:
				case <-deadline:
					t.Fatalf("%d goroutines left:\n%s", len(left), strings.Join(left, "\n\n"))
				}
			}
		})
	}
}
