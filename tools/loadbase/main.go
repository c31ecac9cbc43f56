// Command loadbase is the baseline for imbot's load tests: a bare sipgo responder that does
// what the imbot echo example does on the wire, with no framework around it (no session
// table beyond a map, no handler chain, no ordering, no typing).
//
//	go run ./tools/loadbase -listen 127.0.0.1:35200 -mode page
//	go run ./tools/loadbase -listen 127.0.0.1:35200 -mode session
//
// It listens on UDP and TCP at the same address.
//
// In page mode it answers every MESSAGE with 200 (To-tag, no Contact) and sends the body back
// as a new out-of-dialog MESSAGE to the sender's From URI, at the request's source address
// and over its transport.
//
// In session mode it answers an INVITE whose SDP offers "m=message ... sip" with 200 and an
// SDP answer, takes the ACK, answers an in-dialog MESSAGE with 200 and sends the body back as
// a MESSAGE inside the dialog, and answers BYE with 200. Anything else gets 488 or 481.
//
// scripts/load.sh runs the same sipp scenario against it and against examples/echo.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:35200", "host:port to listen on, over UDP and TCP")
	mode := flag.String("mode", "page", "page (RFC 3428 MESSAGE echo) or session (INVITE m=message IM session echo)")
	verbose := flag.Bool("v", false, "log sipgo warnings and errors to stderr")
	flag.Parse()
	if *mode != "page" && *mode != "session" {
		log.Fatalf("loadbase: -mode must be page or session, not %q", *mode)
	}
	level := slog.LevelError + 4 // silent: load tests must not measure logging
	if *verbose {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *mode, logger); err != nil {
		log.Fatalf("loadbase: %v", err)
	}
}

// responder holds the SIP stack and, in session mode, the open dialogs.
type responder struct {
	identity sip.Uri
	clients  map[string]*sipgo.Client   // by network
	duas     map[string]*sipgo.DialogUA // by network
	dialogs  sync.Map                   // dialog ID -> *sipgo.DialogServerSession
	answer   []byte                     // SDP answer
	ctx      context.Context
}

func run(ctx context.Context, listen, mode string, logger *slog.Logger) error {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("-listen %q: bad port", listen)
	}
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return err
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	r := &responder{
		identity: sip.Uri{Scheme: "sip", User: "base", Host: host, Port: port},
		clients:  map[string]*sipgo.Client{},
		duas:     map[string]*sipgo.DialogUA{},
		ctx:      ctx,
	}
	r.answer = []byte("v=0\r\no=- 0 0 IN IP4 " + host + "\r\ns=session\r\nc=IN IP4 " + host +
		"\r\nt=0 0\r\nm=message " + portStr + " sip " + r.identity.String() +
		"\r\na=accept-types:text/plain\r\n")

	ua, err := sipgo.NewUA(sipgo.WithUserAgent("loadbase"), sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(logger)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(logger)))
	if err != nil {
		return err
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(logger))
	if err != nil {
		return err
	}
	for _, network := range []string{"udp", "tcp"} {
		opts := []sipgo.ClientOption{sipgo.WithClientHostname(host), sipgo.WithClientPort(port), sipgo.WithClientLogger(logger)}
		if network == "udp" {
			opts = append(opts, sipgo.WithClientConnectionAddr(listen))
		}
		cli, err := sipgo.NewClient(ua, opts...)
		if err != nil {
			return err
		}
		r.clients[network] = cli
		contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "base", Host: host, Port: port,
			UriParams: sip.HeaderParams{{K: "transport", V: network}}}}
		r.duas[network] = &sipgo.DialogUA{Client: cli, ContactHDR: contact, RewriteContact: true}
	}

	if mode == "page" {
		srv.OnMessage(r.onPageMessage)
	} else {
		srv.OnInvite(r.onInvite)
		srv.OnAck(r.onAck)
		srv.OnMessage(r.onDialogMessage)
		srv.OnBye(r.onBye)
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.ServeUDP(pc) }()
	go func() { errc <- srv.ServeTCP(ln) }()
	fmt.Fprintf(os.Stderr, "loadbase: %s mode on udp+tcp %s\n", mode, listen)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}

func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// onPageMessage answers 200 and echoes the body in a new out-of-dialog MESSAGE.
func (r *responder) onPageMessage(req *sip.Request, tx sip.ServerTransaction) {
	respond(req, tx, 200, "OK")
	from := req.From()
	if from == nil || len(req.Body()) == 0 {
		return
	}
	network := sip.NetworkToLower(req.Transport())
	out := sip.NewRequest(sip.MESSAGE, from.Address)
	f := &sip.FromHeader{Address: r.identity}
	f.Params.Add("tag", sip.GenerateTagN(16))
	out.AppendHeader(f)
	out.AppendHeader(&sip.ToHeader{Address: from.Address})
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	out.AppendHeader(&ct)
	out.SetBody(req.Body())
	out.SetDestination(req.Source())
	out.SetTransport(req.Transport())
	go r.do(r.clients[network], out)
}

// do sends a page-mode request and waits for its final response, as imbot does.
func (r *responder) do(cli *sipgo.Client, req *sip.Request) {
	ctx, cancel := context.WithTimeout(r.ctx, 32*time.Second)
	defer cancel()
	_, _ = cli.Do(ctx, req)
}

// onInvite accepts an IM session offer (m=message ... sip) and refuses anything else.
func (r *responder) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To().Params.Has("tag") {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !bytes.Contains(req.Body(), []byte("m=message ")) {
		respond(req, tx, 488, "Not Acceptable Here")
		return
	}
	dua := r.duas[sip.NetworkToLower(req.Transport())]
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		respond(req, tx, 400, "Bad Request")
		return
	}
	r.dialogs.Store(dlg.ID, dlg)
	ct := sip.ContentTypeHeader("application/sdp")
	// Respond blocks until the ACK arrives.
	if err := dlg.Respond(200, "OK", r.answer, &ct); err != nil {
		r.dialogs.Delete(dlg.ID)
		_ = dlg.Close()
	}
}

func (r *responder) lookup(req *sip.Request) *sipgo.DialogServerSession {
	id, err := sip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	v, ok := r.dialogs.Load(id)
	if !ok {
		return nil
	}
	return v.(*sipgo.DialogServerSession)
}

func (r *responder) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if dlg := r.lookup(req); dlg != nil {
		_ = dlg.ReadAck(req, tx)
	}
}

// onDialogMessage answers 200 and echoes the body inside the dialog.
func (r *responder) onDialogMessage(req *sip.Request, tx sip.ServerTransaction) {
	dlg := r.lookup(req)
	if dlg == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	respond(req, tx, 200, "OK")
	if len(req.Body()) == 0 {
		return
	}
	out := sip.NewRequest(sip.MESSAGE, dlg.InviteRequest.Contact().Address)
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	out.AppendHeader(&ct)
	out.SetBody(req.Body())
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, 32*time.Second)
		defer cancel()
		_, _ = dlg.Do(ctx, out)
	}()
}

func (r *responder) onBye(req *sip.Request, tx sip.ServerTransaction) {
	dlg := r.lookup(req)
	if dlg == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	r.dialogs.Delete(dlg.ID)
	_ = dlg.ReadBye(req, tx)
	_ = dlg.Close()
}
