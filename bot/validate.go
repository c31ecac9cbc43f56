package bot

import (
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// validate checks what every request must get right before it may change any state (RFC
// 3261 §8.2): the protocol version, a CSeq that names the request's method, and From and To
// addresses the bot can answer without carrying anything unsafe into its own requests. It
// returns the status and reason to refuse the request with, or 0.
func validate(req *sip.Request) (int, string) {
	if req.SipVersion != "SIP/2.0" {
		return 505, "Version Not Supported"
	}
	if cseq := req.CSeq(); cseq.MethodName != req.Method {
		return 400, "CSeq Method Does Not Match"
	}
	if req.IsAck() || req.IsCancel() {
		return 0, ""
	}
	for _, h := range []struct {
		name string
		uri  sip.Uri
	}{{"From", req.From().Address}, {"To", req.To().Address}} {
		if !answerable(h.uri) {
			return 400, "Bad " + h.name + " URI"
		}
	}
	for _, v := range []string{req.From().DisplayName, req.To().DisplayName, req.CallID().Value()} {
		if unsafeText(v) {
			return 400, "Bad Header Value"
		}
	}
	if c := req.Contact(); c != nil && unsafeText(c.Address.String()) {
		return 400, "Bad Contact"
	}
	return 0, ""
}

// answerable reports whether a From or To address is a SIP URI the bot can write back: sip
// or sips, a host, and nothing that would break a header line.
func answerable(u sip.Uri) bool {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "sip" && scheme != "sips" {
		return false
	}
	if u.Host == "" || u.Wildcard {
		return false
	}
	return !unsafeText(u.String())
}

// unsafeText reports control characters (CR, LF, NUL and the others below space, DEL) in a
// value that the bot may copy into a request of its own.
func unsafeText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// mergeMemory is how many out-of-dialog requests the bot remembers to detect merged requests
// (RFC 3261 §8.2.2.2): a forking proxy's copies arrive within moments of each other, so a
// bounded memory of the latest requests is enough, and costs a fixed amount under a flood.
const mergeMemory = 1 << 15

// merges detects merged requests: a request without a To-tag whose Call-ID, From-tag and CSeq
// match a recent one that came with another branch, which a forking proxy delivered twice.
type merges struct {
	mu   sync.Mutex
	seen map[mergeKey]string // -> branch
	ring []mergeKey
	next int
}

type mergeKey struct {
	callID, fromTag string
	cseq            uint32
	method          sip.RequestMethod
}

// merged records req and reports whether it is a merged copy of an earlier request.
func (m *merges) merged(req *sip.Request) bool {
	if inDialog(req) || req.IsAck() || req.IsCancel() {
		return false
	}
	via := req.Via()
	if via == nil {
		return false
	}
	branch, _ := via.Params.Get("branch")
	tag, _ := req.From().Params.Get("tag")
	k := mergeKey{callID: req.CallID().Value(), fromTag: tag, cseq: req.CSeq().SeqNo, method: req.Method}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[mergeKey]string, mergeMemory)
		m.ring = make([]mergeKey, mergeMemory)
	}
	if b, ok := m.seen[k]; ok {
		return b != branch
	}
	if old := m.ring[m.next]; old != (mergeKey{}) {
		delete(m.seen, old)
	}
	m.ring[m.next] = k
	m.next = (m.next + 1) % len(m.ring)
	m.seen[k] = branch
	return false
}
