package bottest_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot/bottest"
)

// sipgoGoroutines returns the stacks of goroutines running sipgo or kit code.
func sipgoGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "emiago/sipgo") || strings.Contains(g, "bot/bottest.") {
			if strings.Contains(g, "TestNoGoroutineLeak") {
				continue
			}
			out = append(out, g)
		}
	}
	return out
}

func TestNoGoroutineLeak(t *testing.T) {
	for _, tp := range transports {
		t.Run(string(tp), func(t *testing.T) {
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
			if len(sipgoGoroutines()) == 0 {
				t.Fatal("the goroutine filter finds nothing")
			}
			p.Close() // the session is still open
			r.Close()

			// Goroutines exit asynchronously after their sockets close.
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(5 * time.Second)
			for {
				left := sipgoGoroutines()
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
