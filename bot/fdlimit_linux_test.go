package bot_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/bot/bottest"
)

// fdLimitChild names the environment variable that makes TestOpenFileLimit the bot
// process.
const fdLimitChild = "IMBOT_TEST_FDLIMIT_CHILD"

// TestOpenFileLimit runs a bot in a child process whose open-file limit is a few
// descriptors above what it uses, floods its TCP listener with more connections than that
// (its MaxConnections, 1024, is far above), and checks that the bot lives through the
// accept errors ("too many open files"): it answers over UDP during the flood and over a
// new TCP connection after it, and its Run does not return.
func TestOpenFileLimit(t *testing.T) {
	if os.Getenv(fdLimitChild) != "" {
		runFDLimitChild(t)
		return
	}
	const flood = 40
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOpenFileLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), fdLimitChild+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logs strings.Builder
	var logsMu sync.Mutex
	emfile := make(chan struct{})
	var outWG sync.WaitGroup
	outWG.Add(1)
	go func() {
		defer outWG.Done()
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logsMu.Lock()
			logs.WriteString(sc.Text() + "\n")
			logsMu.Unlock()
			if strings.Contains(sc.Text(), "too many open files") {
				once.Do(func() { close(emfile) })
			}
		}
	}()
	lines := make(chan string, 16)
	outWG.Add(1)
	go func() {
		defer outWG.Done()
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	childLogs := func() string {
		logsMu.Lock()
		defer logsMu.Unlock()
		return logs.String()
	}
	defer func() {
		stdin.Close() // the child stops its bot and exits
		outWG.Wait()
		if err := <-exited; err != nil {
			t.Errorf("child: %v\n%s", err, childLogs())
		}
	}()
	go func() {
		outWG.Wait()
		exited <- cmd.Wait()
	}()

	var udpAddr, tcpAddr string
	for line := range lines {
		if _, err := fmt.Sscanf(line, "bot udp=%s tcp=%s", &udpAddr, &tcpAddr); err == nil {
			break
		}
	}
	if tcpAddr == "" {
		t.Fatalf("the child bot did not start:\n%s", childLogs())
	}
	// Any line the child prints from now on says that its Run returned.
	runReturned := make(chan string, 1)
	go func() {
		for line := range lines {
			select {
			case runReturned <- line:
			default:
			}
		}
	}()

	conns := make([]net.Conn, 0, flood)
	for i := 0; i < flood; i++ {
		c, err := net.DialTimeout("tcp", tcpAddr, deadline)
		if err != nil {
			select {
			case line := <-runReturned:
				t.Fatalf("the bot stopped: %s\n%s", line, childLogs())
			case <-ctx.Done():
				t.Fatalf("dial %d: %v\n%s", i, err, childLogs())
			}
		}
		defer c.Close()
		conns = append(conns, c)
	}
	select {
	case <-emfile:
	case line := <-runReturned:
		t.Fatalf("the bot stopped: %s\n%s", line, childLogs())
	case <-ctx.Done():
		t.Fatalf("the bot never ran out of file descriptors:\n%s", childLogs())
	}

	p := bottest.NewPeer(t, bottest.Options{Bot: udpAddr, BotURI: "sip:bot@" + udpAddr})
	if res, err := p.SendPage(ctx, "over UDP, out of descriptors"); err != nil || res.StatusCode != 200 {
		t.Fatalf("MESSAGE over UDP while the bot is out of descriptors: %v, %v\n%s", res, err, childLogs())
	}
	for _, c := range conns {
		c.Close()
	}
	for {
		code, err := doFresh(tcpAddr, "over TCP after the flood")
		if code == 200 {
			break
		}
		select {
		case line := <-runReturned:
			t.Fatalf("the bot stopped: %s\n%s", line, childLogs())
		case <-ctx.Done():
			t.Fatalf("no answer over a new TCP connection after the flood: %d, %v\n%s", code, err, childLogs())
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case line := <-runReturned:
		t.Fatalf("the bot stopped: %s\n%s", line, childLogs())
	default:
	}
}

// runFDLimitChild is the bot process of TestOpenFileLimit. It prints its addresses, then
// serves until its stdin closes. If Run returns first, it prints why.
func runFDLimitChild(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := bot.New(bot.Config{
		Listen:          []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"},
		Identity:        "sip:bot@127.0.0.1",
		Logger:          log,
		ShutdownTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Handle(silent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()
	// Leave a few descriptors free.
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("bot udp=%s tcp=%s\n", b.Addr("udp"), b.Addr("tcp"))
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	case err := <-done:
		cancel()
		fmt.Printf("Run returned: %v\n", err)
	}
}
