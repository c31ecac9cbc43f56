package interop

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/imbot-dev/imbot/imbotcmd"
)

// TestChatClientThroughKamailio runs imbot chat --to against the echo bot registered with
// Kamailio, addressing the bot's address of record at Kamailio as a deployment does, in page
// mode and in an IM session, as an anonymous user and as alice registered with digest
// credentials (--registrar). Its input is a pipe: the bot's echo must appear in its output,
// no typing is sent, and the session ends with a BYE that Kamailio relays in the dialog.
func TestChatClientThroughKamailio(t *testing.T) {
	cases := []struct {
		name       string
		session    bool
		registered bool
	}{
		{"page", false, false},
		{"page registered", false, true},
		{"session", true, false},
		{"session registered", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := startKamailio(t, kamOptions{})
			b := startRegisteredBot(t, k, "udp", nil)

			args := []string{"chat", "--to", "sip:bot@" + k.addr()}
			user := "erin"
			if c.registered {
				user = "alice"
				t.Setenv("IMBOT_INTEROP_ALICE_PW", "alicepw")
				args = append(args, "--from", "sip:alice@127.0.0.1", "--registrar", k.uri("udp"),
					"--user", "alice", "--password-env", "IMBOT_INTEROP_ALICE_PW")
			} else {
				// The bot answers a page-mode message at its From: the address with the
				// client's port.
				port := freePort(t)
				args = append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
					"--from", fmt.Sprintf("sip:erin@127.0.0.1:%d", port))
			}
			if c.session {
				args = append(args, "--session")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 3*toolTimeout)
			defer cancel()
			in, inW := io.Pipe()
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			exit := make(chan int, 1)
			go func() {
				exit <- imbotcmd.Program{}.Run(ctx, args, in, stdout, stderr)
				in.Close()
			}()
			mark := k.log.Len()
			for _, text := range []string{"hello through kamailio", "and again"} {
				if _, err := io.WriteString(inW, text+"\n"); err != nil {
					t.Fatalf("writing the input: %v; stdout %q, stderr %q", err, stdout.String(), stderr.String())
				}
				if _, _, err := stdout.waitLine(toolTimeout, "bot> "+echoText(text)); err != nil {
					t.Fatalf("%v; stdout %q, stderr %q", err, stdout.String(), stderr.String())
				}
			}
			inW.Close() // the end of the input: the session ends
			select {
			case code := <-exit:
				if code != 0 {
					t.Errorf("imbot chat exited %d; stdout %q, stderr %q", code, stdout.String(), stderr.String())
				}
			case <-ctx.Done():
				t.Fatalf("imbot chat did not end; stdout %q, stderr %q", stdout.String(), stderr.String())
			}

			mode := "page"
			if c.session {
				mode = "session"
			}
			b.expectEvent(t, "message "+mode+" sip:"+user+"@127.0.0.1", ": hello through kamailio")
			b.expectEvent(t, "replied "+mode+" sip:"+user+"@127.0.0.1", ": echo: and again (err <nil>)")
			if c.session {
				if !strings.Contains(stdout.String(), "* session ended") {
					t.Errorf("no session end in the output %q", stdout.String())
				}
				b.expectEvent(t, "session.end session sip:"+user+"@127.0.0.1")
				k.expect(mark, "IMBOT-INDIALOG BYE sip:bot@", "from=sip:"+user+"@127.0.0.1")
			}
			if c.registered {
				k.expect(0, "IMBOT-REGISTER user=alice")
			}
			if n := countEvents(b, func(line string) bool { return strings.HasPrefix(line, "typing ") }); n != 0 {
				t.Errorf("the bot saw %d typing events from piped input; events:\n%s", n, b.events.String())
			}
		})
	}
}
