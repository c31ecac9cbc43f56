// Command loadbase is the baseline for imbot's load tests: a bare sipgo responder that does
// what the imbot echo example does on the wire, with no framework around it (no session
// table beyond a map, no handler chain, no ordering; typing only with -typing).
//
//	go run ./tools/loadbase -listen 127.0.0.1:35200 -mode page
//	go run ./tools/loadbase -listen 127.0.0.1:35200 -mode session
//	go run ./tools/loadbase -listen 127.0.0.1:35200 -mode page -typing
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
// With -typing it shows typing before each echo as imbot does with a peer that accepts it: when
// the peer lists application/im-iscomposing+xml (page mode: in the MESSAGE's Accept header;
// session mode: in the offer's a=accept-types), it first sends an RFC 3994 isComposing
// "active" MESSAGE the same way as the echo, waits for its final response, then sends the echo.
// Without -typing, or to a peer that does not list it, no typing is sent.
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:35200", "host:port to listen on, over UDP and TCP")
	mode := flag.String("mode", "page", "page (RFC 3428 MESSAGE echo) or session (INVITE m=message IM session echo)")
	typing := flag.Bool("typing", false, "send an RFC 3994 isComposing MESSAGE before each echo to a peer that accepts it, as imbot does")
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
	if err := run(ctx, *listen, *mode, *typing, logger); err != nil {
		log.Fatalf("loadbase: %v", err)
	}
}

// responder holds the SIP stack and, in session mode, the open dialogs.
type responder struct {
	identity sip.Uri
	clients  map[string]*sipgo.Client   // by network
	duas     map[string]*sipgo.DialogUA // by network
	dialogs  sync.Map                   // dialog ID -> *dialog
	answer   []byte                     // SDP answer
	typing   bool                       // -typing
	ctx      context.Context
}

// dialog is an open IM session.
type dialog struct {
	*sipgo.DialogServerSession
	typing bool // the peer's offer accepts isComposing (and -typing is set)
}

// typeIsComposing is the RFC 3994 content type; isComposingActive is the body imbot sends
// (internal/imcodec.IsComposing(true, 30s)), written out here to keep the baseline bare.
const (
	typeIsComposing   = "application/im-iscomposing+xml"
	isComposingActive = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>` +
		`<contenttype>text/plain</contenttype><refresh>30</refresh></isComposing>`
)

func run(ctx context.Context, listen, mode string, typing bool, logger *slog.Logger) error {
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
		typing:   typing,
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
	fmt.Fprintf(os.Stderr, "loadbase: %s mode on udp+tcp %s (typing %v)\n", mode, listen, typing)
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

// onPageMessage answers 200 and echoes the body in a new out-of-dialog MESSAGE, after an
// isComposing MESSAGE when typing is on and the peer accepts it.
func (r *responder) onPageMessage(req *sip.Request, tx sip.ServerTransaction) {
	respond(req, tx, 200, "OK")
	from := req.From()
	if from == nil || len(req.Body()) == 0 {
		return
	}
	if ct := req.ContentType(); ct != nil && strings.HasPrefix(ct.Value(), typeIsComposing) {
		return // the peer's own typing: nothing to echo
	}
	typing := false
	if r.typing {
		if acc := req.GetHeader("Accept"); acc != nil && strings.Contains(acc.Value(), typeIsComposing) {
			typing = true
		}
	}
	cli := r.clients[sip.NetworkToLower(req.Transport())]
	src, tp, body := req.Source(), req.Transport(), req.Body()
	go func() {
		if typing {
			r.do(cli, r.pageRequest(from.Address, src, tp, typeIsComposing, []byte(isComposingActive)))
		}
		r.do(cli, r.pageRequest(from.Address, src, tp, "text/plain;charset=UTF-8", body))
	}()
}

// pageRequest builds an out-of-dialog MESSAGE to the peer, sent where its request came from.
func (r *responder) pageRequest(to sip.Uri, dest, transport, contentType string, body []byte) *sip.Request {
	out := sip.NewRequest(sip.MESSAGE, to)
	f := &sip.FromHeader{Address: r.identity}
	f.Params.Add("tag", sip.GenerateTagN(16))
	out.AppendHeader(f)
	out.AppendHeader(&sip.ToHeader{Address: to})
	ct := sip.ContentTypeHeader(contentType)
	out.AppendHeader(&ct)
	out.SetBody(body)
	out.SetDestination(dest)
	out.SetTransport(transport)
	return out
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
	typing := r.typing && bytes.Contains(req.Body(), []byte(typeIsComposing))
	r.dialogs.Store(dlg.ID, &dialog{DialogServerSession: dlg, typing: typing})
	ct := sip.ContentTypeHeader("application/sdp")
	// Respond blocks until the ACK arrives.
	if err := dlg.Respond(200, "OK", r.answer, &ct); err != nil {
		r.dialogs.Delete(dlg.ID)
		_ = dlg.Close()
	}
}

func (r *responder) lookup(req *sip.Request) *dialog {
	id, err := sip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	v, ok := r.dialogs.Load(id)
	if !ok {
		return nil
	}
	return v.(*dialog)
}

func (r *responder) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if dlg := r.lookup(req); dlg != nil {
		_ = dlg.ReadAck(req, tx)
	}
}

// onDialogMessage answers 200 and echoes the body inside the dialog, after an isComposing
// MESSAGE when typing is on and the offer accepted it.
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
	if ct := req.ContentType(); ct != nil && strings.HasPrefix(ct.Value(), typeIsComposing) {
		return
	}
	target := dlg.InviteRequest.Contact().Address
	body := req.Body()
	go func() {
		if dlg.typing {
			dlg.do(r.ctx, target, typeIsComposing, []byte(isComposingActive))
		}
		dlg.do(r.ctx, target, "text/plain;charset=UTF-8", body)
	}()
}

// do sends a MESSAGE in the dialog and waits for its final response.
func (d *dialog) do(parent context.Context, target sip.Uri, contentType string, body []byte) {
	out := sip.NewRequest(sip.MESSAGE, target)
	ct := sip.ContentTypeHeader(contentType)
	out.AppendHeader(&ct)
	out.SetBody(body)
	ctx, cancel := context.WithTimeout(parent, 32*time.Second)
	defer cancel()
	_, _ = d.Do(ctx, out)
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
