// Command wsload measures the web chat under load: many web visitors, each on a WebSocket of
// its own with its guest token, as the widget connects, against the same number of SIP
// clients, each on a TCP connection of its own, in the same run and against the same bot.
//
//	go run ./tools/wsload -visitors 2000 -duration 10s
//
// The bot is an in-process echo bot set up as imbot run sets up a web chat (ws:// listener,
// guest tokens from package web, Trust.Guests); the clients run in the same process, on
// loopback. For each transport it opens every connection, reads the heap the bot holds with
// them all open and idle, then has every client chat for the duration, a message every
// -interval (as people chat; 0: as fast as answers come): a page-mode MESSAGE, its 200, the
// bot's echo (answered 200). It prints the round trips a second, the messages answered 503
// (the bot behind), the latency p50 and p99, and the heap per open connection, then the
// ratios WebSocket/TCP. Figures are for one machine with clients and bot sharing its CPUs.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/imbot-dev/imbot/bot"
	"github.com/imbot-dev/imbot/web"
)

func main() {
	visitors := flag.Int("visitors", 1000, "clients of each transport, each on its own connection")
	duration := flag.Duration("duration", 10*time.Second, "how long every client chats")
	interval := flag.Duration("interval", time.Second, "each client sends a message this often (0: the next as soon as the last is answered)")
	flag.Parse()
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler)) // sipgo's own lines about closing connections
	if err := run(*visitors, *duration, *interval); err != nil {
		log.Fatal(err)
	}
}

// result is one transport's figures.
type result struct {
	name          string
	trips         int64
	busy          int64 // messages answered 503 (the bot was behind)
	rate          float64
	p50, p99      time.Duration
	heapPerConn   float64 // bytes
	goroutinesPer float64
}

func run(n int, d, every time.Duration) error {
	guests, err := web.NewGuests(web.NewKey(), "", time.Hour)
	if err != nil {
		return err
	}
	b, err := bot.New(bot.Config{
		Listen:         []string{"ws://127.0.0.1:0", "tcp://127.0.0.1:0"},
		Identity:       "sip:bot@127.0.0.1",
		Logger:         slog.New(slog.DiscardHandler),
		MaxConnections: 2*n + 100,
		Trust:          bot.TrustConfig{Unverified: true, Guests: guests},
		Typing:         bot.TypingConfig{Off: true},
	})
	if err != nil {
		return err
	}
	b.Handle(bot.HandlerFunc(func(ctx context.Context, w bot.Responder, ev *bot.Event) error {
		if ev.Kind != bot.EventMessage {
			return nil
		}
		return w.Reply(ctx, ev.Text)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = b.Run(ctx) }()
	<-b.Ready()

	var results []result
	for _, tr := range []string{"ws", "tcp"} {
		r, err := measure(ctx, b, guests, tr, n, d, every)
		if err != nil {
			return fmt.Errorf("%s: %w", tr, err)
		}
		results = append(results, r)
	}
	fmt.Printf("wsload: %d clients per transport, each a message every %v for %v, bot and clients on %d CPUs\n", n, every, d, runtime.NumCPU())
	fmt.Printf("%-10s %10s %10s %8s %9s %9s %14s %12s\n", "transport", "trips", "trips/s", "503", "p50_ms", "p99_ms", "heap/conn_KB", "goroutines/conn")
	for _, r := range results {
		fmt.Printf("%-10s %10d %10.0f %8d %9.2f %9.2f %14.1f %12.2f\n", r.name, r.trips, r.rate, r.busy,
			ms(r.p50), ms(r.p99), r.heapPerConn/1024, r.goroutinesPer)
	}
	w, t := results[0], results[1]
	fmt.Printf("websocket/tcp: trips/s %.2f, p99 %.2f, heap per connection %.2f\n", w.rate/t.rate,
		float64(w.p99)/float64(t.p99), w.heapPerConn/t.heapPerConn)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// client is one visitor's connection.
type client struct {
	conn   net.Conn
	read   func() (string, error)
	write  func(string) error
	from   string
	token  string
	seq    int
	branch int
}

func dial(ctx context.Context, b *bot.Bot, guests *web.Guests, transport string, i int) (*client, error) {
	c := &client{}
	switch transport {
	case "ws":
		conn, _, _, err := ws.Dialer{Protocols: []string{"sip"}}.Dial(ctx, "ws://"+b.Addr("ws"))
		if err != nil {
			return nil, err
		}
		g := guests.Issue()
		c.conn, c.from, c.token = conn, g.URI, g.Token
		c.read = func() (string, error) { p, err := wsutil.ReadServerText(conn); return string(p), err }
		c.write = func(s string) error { return wsutil.WriteClientText(conn, []byte(s)) }
	case "tcp":
		conn, err := net.Dial("tcp", b.Addr("tcp"))
		if err != nil {
			return nil, err
		}
		c.conn, c.from = conn, fmt.Sprintf("sip:client%d@127.0.0.1", i)
		r := bufio.NewReader(conn)
		c.read = func() (string, error) { return readStream(r) }
		c.write = func(s string) error { _, err := io.WriteString(conn, s); return err }
	}
	return c, nil
}

// readStream reads one SIP message from a stream: the head, then Content-Length bytes.
func readStream(r *bufio.Reader) (string, error) {
	var head strings.Builder
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == "\r\n" && head.Len() == 0 {
			continue // keep-alive
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(k, "Content-Length") || k == "l") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return head.String() + string(body), nil
}

// header returns the value of a header of a SIP message.
func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// errBusy is a message answered 503.
var errBusy = errors.New("503")

// trip sends one message and waits for its 200 and the echo, which it answers.
func (c *client) trip(b *bot.Bot, transport string) error {
	c.seq++
	c.branch++
	text := fmt.Sprintf("ping %d", c.seq)
	callID := fmt.Sprintf("%s-%d", strings.TrimPrefix(c.from, "sip:"), c.seq)
	guest := ""
	if c.token != "" {
		guest = bot.GuestHeader + ": " + c.token + "\r\n"
	}
	via := "SIP/2.0/TCP " + c.conn.LocalAddr().String()
	if transport == "ws" {
		via = "SIP/2.0/WS df7jal23ls0d.invalid"
	}
	msg := fmt.Sprintf("MESSAGE %s SIP/2.0\r\nVia: %s;branch=z9hG4bK%s\r\nMax-Forwards: 70\r\n"+
		"From: <%s>;tag=%d\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: 1 MESSAGE\r\n%s"+
		"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		b.URI(), via, callID, c.from, c.seq, b.URI(), callID, guest, len(text), text)
	if err := c.write(msg); err != nil {
		return err
	}
	okd, echoed := false, false
	for !okd || !echoed {
		in, err := c.read()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(in, "SIP/2.0 200") && header(in, "Call-ID") == callID:
			okd = true
		case strings.HasPrefix(in, "SIP/2.0 503") && header(in, "Call-ID") == callID:
			return errBusy
		case strings.HasPrefix(in, "SIP/2.0 "):
			return fmt.Errorf("answered %s", strings.SplitN(in, "\r\n", 2)[0])
		case strings.HasPrefix(in, "MESSAGE ") && strings.HasSuffix(in, "\r\n\r\n"+text):
			echoed = true
			ans := fmt.Sprintf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=c\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
				header(in, "Via"), header(in, "From"), header(in, "To"), header(in, "Call-ID"), header(in, "CSeq"))
			if err := c.write(ans); err != nil {
				return err
			}
		}
	}
	return nil
}

func measure(ctx context.Context, b *bot.Bot, guests *web.Guests, transport string, n int, d, every time.Duration) (result, error) {
	r := result{name: transport}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	clients := make([]*client, n)
	for i := range clients {
		c, err := dial(ctx, b, guests, transport, i)
		if err != nil {
			return r, fmt.Errorf("connection %d: %w", i, err)
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.conn.Close()
		}
	}()
	// One trip each, so that the bot has a conversation per client, then the idle heap.
	for _, c := range clients {
		if err := c.trip(b, transport); err != nil {
			return r, err
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// What the clients hold is counted too (their sockets and buffers): about the same
	// for both transports, so the ratio still says which one costs the bot more.
	r.heapPerConn = float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
	r.goroutinesPer = float64(runtime.NumGoroutine()-g0) / float64(n)

	var (
		mu    sync.Mutex
		lat   []time.Duration
		trips atomic.Int64
		busy  atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	stop := time.Now().Add(d)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			next := time.Now().Add(time.Duration(rand.Int64N(int64(every) + 1))) // spread the clients
			for time.Now().Before(stop) {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				next = next.Add(every)
				t0 := time.Now()
				err := c.trip(b, transport)
				if errors.Is(err, errBusy) {
					busy.Add(1)
					continue
				}
				if err != nil {
					mu.Lock()
					if first == nil && !errors.Is(err, net.ErrClosed) {
						first = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
				trips.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return r, first
	}
	slices.Sort(lat)
	r.trips, r.busy = trips.Load(), busy.Load()
	r.rate = float64(r.trips) / elapsed.Seconds()
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	fmt.Fprintf(os.Stderr, "wsload: %s done: %d trips in %v\n", transport, r.trips, elapsed.Round(time.Millisecond))
	return r, nil
}
