package bot

import (
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A MESSAGE (or BYE) over UDP is a transaction of its own, which sipgo would keep, with its
// request, its 200 and its timers, for 32 s after the 200 (Timer J) to absorb the sender's
// retransmissions: at thousands of messages a second, most of the bot's memory and a good
// part of its garbage collection. The bot remembers only the request's transaction key
// (RFC 3261 §17.2.3: branch, sent-by, method) and the To tag of its 200, in two generations
// of 32 s: the lean path's read loop (leanudp.go) answers a retransmission with the same 200
// again, and it is not handled twice.

// answeredMemory is how long a page-mode request's key is remembered at least: Timer J,
// 64·T1 (T1 = 500 ms), the longest a client retransmits a non-INVITE request.
const answeredMemory = 32 * time.Second

// answered remembers the keys of the requests over UDP the bot answered 200: page-mode
// MESSAGEs (respondPage) and in-dialog ones (leanServerTx.Respond).
type answered struct {
	mu       sync.Mutex
	cur, old map[string]string // key -> To tag of the 200
	turned   time.Time
}

// txKey is a request's server transaction key (RFC 3261 §17.2.3), or "" for a request from
// an RFC 2543 client (no magic cookie) that sipgo's transaction layer must match itself.
func txKey(req *sip.Request) string {
	via := req.Via()
	if via == nil {
		return ""
	}
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) {
		return ""
	}
	return branch + "|" + via.Host + "|" + string(req.Method)
}

// add records a key and the To tag of its 200.
func (a *answered) add(key, tag string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil || now.Sub(a.turned) >= answeredMemory {
		a.old, a.cur, a.turned = a.cur, make(map[string]string, max(len(a.cur), 64)), now
	}
	a.cur[key] = tag
}

// get returns the To tag recorded with a key (in the last 32 to 64 s).
func (a *answered) get(key string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tag, ok := a.cur[key]
	if !ok {
		tag, ok = a.old[key]
	}
	return tag, ok
}

// respondPage answers a page-mode request 200. Over UDP it then ends the transaction,
// remembering the request's key and the 200's To tag (see answered).
func (b *Bot) respondPage(req *sip.Request, tx sip.ServerTransaction) {
	key := ""
	if !sip.IsReliable(req.Transport()) {
		key = txKey(req) // otherwise no retransmissions: sipgo ends the transaction already
	}
	if key == "" {
		b.respond(req, tx, 200)
		return
	}
	tag := sip.GenerateTagN(16)
	b.answered.add(key, tag, time.Now())
	b.respondTagged(req, tx, tag)
	tx.Terminate()
}

// respondTagged answers 200 with a To tag of the caller's.
func (b *Bot) respondTagged(req *sip.Request, tx sip.ServerTransaction, tag string) {
	if lt, ok := tx.(*leanServerTx); ok {
		if err := lt.respondOK(req, tag); err != nil {
			b.log.Debug("response not sent", "method", req.Method, "code", 200, "err", err)
			return
		}
		b.observeResponse(200)
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.SipVersion = "SIP/2.0"
	if to := res.To(); to != nil {
		to.Params.Add("tag", tag)
	}
	b.sendResponse(req, tx, res)
}
