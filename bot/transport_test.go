package bot_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/imbot-dev/imbot/bot"
)

// selfSigned returns a server config for 127.0.0.1 and a client config that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "imbot test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	return server, client
}

// streamClient is a sipgo UA that sends a page-mode MESSAGE over a stream transport and
// collects the MESSAGEs the bot sends back over the same connection.
func streamClient(t *testing.T, clientTLS *tls.Config) (*sipgo.Client, chan string) {
	t.Helper()
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgent("alice")}
	if clientTLS != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(clientTLS))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	srv, _ := sipgo.NewServer(ua)
	got := make(chan string, 8)
	srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		got <- string(req.Body())
	})
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return cli, got
}

func TestStreamTransports(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	for _, network := range []string{"tls", "ws", "wss"} {
		t.Run(network, func(t *testing.T) {
			r := startBot(t, bot.Config{Listen: []string{network + "://127.0.0.1:0"}, TLS: serverTLS}, newRecorder())
			cli, got := streamClient(t, clientTLS)
			ctx := testCtx(t)
			// A browser-style client: its own address is unroutable, so the bot must answer
			// over the connection the request came in on.
			req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bot", Host: "127.0.0.1"})
			from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "df7jal23ls0d.invalid"}}
			from.Params.Add("tag", sip.GenerateTagN(8))
			req.AppendHeader(from)
			ct := sip.ContentTypeHeader("text/plain")
			req.AppendHeader(&ct)
			req.SetBody([]byte("over " + network))
			req.SetDestination(r.Addr(network))
			req.SetTransport(strings.ToUpper(network))
			res, err := cli.Do(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("answered %d", res.StatusCode)
			}
			select {
			case body := <-got:
				if body != "echo: over "+network {
					t.Errorf("reply %q", body)
				}
			case <-ctx.Done():
				t.Fatal("no reply over the client's connection")
			}
		})
	}
	t.Run("tls without certificate", func(t *testing.T) {
		_, err := bot.New(bot.Config{Listen: []string{"tls://127.0.0.1:0"}})
		if err == nil || !strings.Contains(err.Error(), "Config.TLS") {
			t.Errorf("New: %v, want an error that asks for Config.TLS", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		r := startBot(t, bot.Config{Listen: []string{"tls://127.0.0.1:0"}, TLS: serverTLS}, newRecorder())
		cli, _ := streamClient(t, &tls.Config{ServerName: "127.0.0.1"}) // system roots: not trusted
		ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
		defer cancel()
		req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bot", Host: "127.0.0.1"})
		req.SetBody([]byte("hi"))
		req.SetDestination(r.Addr("tls"))
		req.SetTransport("TLS")
		if _, err := cli.Do(ctx, req); err == nil {
			t.Fatal("a client that does not trust the certificate got through")
		}
		// The bot is unharmed.
		cli2, got := streamClient(t, clientTLS)
		req2 := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bot", Host: "127.0.0.1"})
		req2.SetBody([]byte("second"))
		req2.SetDestination(r.Addr("tls"))
		req2.SetTransport("TLS")
		if res, err := cli2.Do(testCtx(t), req2); err != nil || res.StatusCode != 200 {
			t.Fatalf("after a failed handshake: %v %v", res, err)
		}
		select {
		case body := <-got:
			if body != "echo: second" {
				t.Errorf("reply %q", body)
			}
		case <-testCtx(t).Done():
			t.Fatal("no reply after a failed handshake")
		}
	})
}

// A browser-style WebSocket client opens an IM session, then its tab closes: the
// connection drops without a BYE. The bot's next request fails and the session ends as
// dead, leaving nothing behind.
func TestWebSocketClientVanishesMidSession(t *testing.T) {
	sessions := make(chan bot.Conversation, 1)
	rec := newRecorder()
	rec.before = func(ctx context.Context, w bot.Responder, ev *bot.Event) (bool, error) {
		if ev.Kind == bot.EventSessionStart {
			sessions <- ev.Session
		}
		return false, nil
	}
	r := startBot(t, bot.Config{Listen: []string{"ws://127.0.0.1:0"}, RequestTimeout: time.Second}, rec)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("browser"))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "tab", Host: "df7jal23ls0d.invalid",
		UriParams: sip.HeaderParams{{K: "transport", V: "ws"}}}}
	dua := sipgo.DialogUA{Client: cli, ContactHDR: contact}
	ctx := testCtx(t)
	host, port, _ := net.SplitHostPort(r.Addr("ws"))
	p, _ := strconv.Atoi(port)
	target := sip.Uri{Scheme: "sip", User: "bot", Host: host, Port: p, UriParams: sip.HeaderParams{{K: "transport", V: "ws"}}}
	offer := []byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain\r\n")
	ct := sip.ContentTypeHeader("application/sdp")
	dlg, err := dua.Invite(ctx, target, offer, &ct)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	s := <-sessions
	ua.Close() // the tab closes: the WebSocket connection drops, no BYE
	if err := s.Send(ctx, "still there?"); err == nil {
		t.Fatal("a message to a closed WebSocket was reported as sent")
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the session of a vanished WebSocket client stays open")
	}
	rec.waitFor(t, "session.end:dead")
}
