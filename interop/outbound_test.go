package interop

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
)

// waitUDPBound waits until another process has bound port on 127.0.0.1 for UDP: a sipp
// UAS that is ready for the request the test is about to cause.
func waitUDPBound(t *testing.T, port int, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(toolTimeout)
	for {
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return // taken: sipp is listening
		}
		pc.Close()
		select {
		case <-exited:
			t.Fatalf("sipp exited before binding port %d", port)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp did not bind port %d within %v", port, toolTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKamailioOpenSession: the bot opens an IM session (Bot.Open: INVITE m=message in the
// Microsoft dialect) through Kamailio, answering its 407, to an OCS-style sipp client
// (ocs_uas.xml); Kamailio record-routes it. The bot writes first (Session.Send), the
// client's message is served by the bot's handler (the echo comes back in the dialog, along
// the route set), and Session.Close ends it with BYE. The bot reaches Kamailio over UDP and
// over TCP; the client is on UDP.
func TestKamailioOpenSession(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			requireTool(t, "sipp", "sip-tester")
			k := startKamailio(t, kamOptions{})
			b := startRegisteredBot(t, k, network, func(c *bot.Config) { c.Typing.Off = true })

			port := freePort(t)
			resc := make(chan sippResult, 1)
			exited := make(chan struct{})
			go func() {
				defer close(exited)
				resc <- runSipp(t, sippRun{Scenario: "ocs_uas.xml", Transport: "udp", Target: k.addr(), Port: port})
			}()
			var res sippResult
			collected := false
			collect := func() sippResult {
				if !collected {
					<-exited
					res, collected = <-resc, true
				}
				return res
			}
			defer func() {
				if t.Failed() && !collected {
					collect().dump(t)
				}
			}()
			waitUDPBound(t, port, exited)

			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			peer := fmt.Sprintf("sip:dave@127.0.0.1:%d", port)
			s, err := b.Open(ctx, peer)
			if err != nil {
				t.Fatalf("Open %s: %v", peer, err)
			}
			if s.Mode() != bot.ModeSession || s.Peer().URI != peer {
				t.Errorf("session: mode %v, peer %q; want session with %s", s.Mode(), s.Peer().URI, peer)
			}
			if err := s.Send(ctx, "hello from the bot"); err != nil {
				t.Fatalf("Session.Send: %v", err)
			}
			b.expectEvent(t, "session.start session "+peer)
			b.expectEvent(t, "replied session "+peer+": echo: what time is it? (err <nil>)")
			s.Close(ctx)
			waitDone(t, "session end", s.Done())

			t.Logf("sipp <log> trace:\n%s", collect().Logs)
			requireSippOK(t, collect(),
				"offer m=message ",
				"record-route sip:"+k.addr(),
				"bot says: hello from the bot",
				"; via SIP/2.0/UDP "+k.addr(),
				"bot replied: echo: what time is it?",
				"session closed by the bot; via SIP/2.0/UDP "+k.addr(),
			)
			k.expect(0, "IMBOT-ROUTE INVITE "+peer, "from=sip:bot@127.0.0.1", "/"+network)
			k.expect(0, "IMBOT-INDIALOG MESSAGE sip:bot@", "from=sip:dave@")
			k.expect(0, "IMBOT-INDIALOG BYE sip:dave@", "from=sip:bot@", "/"+network)
		})
	}
}
