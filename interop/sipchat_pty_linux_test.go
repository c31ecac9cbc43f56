package interop

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imbot-dev/imbot/imbotcmd"
)

// openPTY opens a pseudo-terminal: keys written to master are read from slave, which a
// program takes for a terminal, and what the program writes to slave is read from master.
// Both are closed when the test ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pseudo-terminal's number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// TestChatClientTerminalThroughKamailio runs imbot chat --to on a terminal (a
// pseudo-terminal the test types into) against the bot registered with Kamailio: the user's
// typing reaches the bot through Kamailio (an isComposing MESSAGE in page mode, a
// KeyboardActivity INFO in the session's dialog), once before the message, and again, with
// idle, for a line cleared with Ctrl-U; the echo is printed; Ctrl-D ends the chat, with a
// BYE in a session.
func TestChatClientTerminalThroughKamailio(t *testing.T) {
	for _, session := range []bool{false, true} {
		mode := "page"
		if session {
			mode = "session"
		}
		t.Run(mode, func(t *testing.T) {
			k := startKamailio(t, kamOptions{})
			b := startRegisteredBot(t, k, "udp", nil)
			master, slave := openPTY(t)

			port := freePort(t)
			args := []string{"chat", "--to", "sip:bot@" + k.addr(),
				"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--from", fmt.Sprintf("sip:erin@127.0.0.1:%d", port)}
			if session {
				args = append(args, "--session")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*toolTimeout)
			defer cancel()
			// stdout is the terminal too: what imbot chat prints there is read at master.
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			go func() { _, _ = io.Copy(stdout, master) }()
			exit := make(chan int, 1)
			go func() { exit <- imbotcmd.Program{}.Run(ctx, args, slave, slave, stderr) }()
			fail := func(format string, a ...any) {
				t.Helper()
				t.Fatalf("%s; stdout %q, stderr %q; events:\n%s", fmt.Sprintf(format, a...), stdout.String(), stderr.String(), b.events.String())
			}
			press := func(keys string) {
				t.Helper()
				if _, err := io.WriteString(master, keys); err != nil {
					fail("typing %q: %v", keys, err)
				}
			}
			isTyping := func(line string) bool { return strings.HasPrefix(line, "typing ") }
			next := 0 // the event line after the last typing waited for
			waitTyping := func() {
				t.Helper()
				_, i, err := b.events.wait(next, toolTimeout, nil, isTyping)
				if err != nil {
					fail("the bot did not see typing: %v", err)
				}
				next = i + 1
			}

			if _, _, err := stdout.waitLine(toolTimeout, "you> "); err != nil {
				fail("%v", err)
			}
			press("hello\r")
			waitTyping()
			if _, _, err := stdout.waitLine(toolTimeout, "bot> "+echoText("hello")); err != nil {
				fail("%v", err)
			}
			b.expectEvent(t, "message "+mode+" sip:erin@127.0.0.1", ": hello")
			if n := countEvents(b, isTyping); n != 1 {
				fail("the bot saw %d typing events before the message, want 1", n)
			}
			press("abc")
			waitTyping()
			press("\x15") // Ctrl-U: idle
			waitTyping()
			press("\x04") // Ctrl-D
			select {
			case code := <-exit:
				if code != 0 {
					t.Errorf("imbot chat exited %d; stderr %q", code, stderr.String())
				}
			case <-ctx.Done():
				fail("imbot chat did not end")
			}

			var order []string
			for _, l := range b.events.Lines(0) {
				if kind, _, _ := strings.Cut(l, " "); kind == "typing" || kind == "message" {
					order = append(order, kind)
				}
			}
			if got := strings.Join(order, " "); got != "typing message typing typing" {
				t.Errorf("the bot saw %q, want typing, the message, typing and idle", got)
			}
			if session {
				b.expectEvent(t, "session.end session sip:erin@127.0.0.1")
				k.expect(0, "IMBOT-INDIALOG INFO sip:bot@", "from=sip:erin@127.0.0.1", "ct=application/xml")
				k.expect(0, "IMBOT-INDIALOG BYE sip:bot@", "from=sip:erin@127.0.0.1")
				if _, _, err := stdout.waitLine(toolTimeout, "* session ended"); err != nil {
					t.Errorf("%v: the screen shows %q", err, stdout.String())
				}
			} else {
				k.expect(0, "IMBOT-ROUTE MESSAGE sip:bot@", "from=sip:erin@127.0.0.1", "ct=application/im-iscomposing+xml")
			}
		})
	}
}
