package bot

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestScanStatus(t *testing.T) {
	const branch = leanBranch + "abcdefghijklmnop"
	for _, c := range []struct {
		name string
		msg  string
		want leanStatus
		ok   bool
	}{
		{"200", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=" + branch + "\r\n" +
			"From: <sip:bot@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 7 MESSAGE\r\nContent-Length: 0\r\n\r\n",
			leanStatus{code: 200, reason: "OK", branch: branch, method: "MESSAGE"}, true},
		{"202, compact and lower-case names, two Vias on a line, rport", "SIP/2.0 202 Accepted for Delivery\r\n" +
			"v: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=" + branch + " , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK.other\r\n" +
			"cseq:  9   MESSAGE\r\n\r\n",
			leanStatus{code: 202, reason: "Accepted for Delivery", branch: branch, method: "MESSAGE"}, true},
		{"the top Via counts", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK.x\r\nCSeq: 1 MESSAGE\r\n\r\n",
			leanStatus{code: 200, reason: "OK", branch: branch, method: "MESSAGE"}, true},
		{"not 2xx", "SIP/2.0 415 Unsupported Media Type\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
		{"provisional", "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
		{"folded header", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\n ;branch=" + branch + "\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
		{"no branch", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
		{"no CSeq", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\n\r\n", leanStatus{}, false},
		{"bad CSeq", "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\nCSeq: MESSAGE\r\n\r\n", leanStatus{}, false},
		{"bad status code", "SIP/2.0 2x0 OK\r\nVia: SIP/2.0/UDP a;branch=" + branch + "\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
		{"line without a colon", "SIP/2.0 200 OK\r\nVia SIP/2.0/UDP a;branch=" + branch + "\r\nCSeq: 1 MESSAGE\r\n\r\n", leanStatus{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := scanStatus([]byte(c.msg))
			if ok != c.ok || (ok && got != c.want) {
				t.Errorf("scanStatus = %+v, %v; want %+v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// FuzzScanStatus checks scanStatus against sipgo's parser: whatever it reads, the parser
// reads the same (status, top Via branch, CSeq method), or nothing.
func FuzzScanStatus(f *testing.F) {
	f.Add("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.imb-x\r\nCSeq: 7 MESSAGE\r\nContent-Length: 0\r\n\r\n")
	f.Add("SIP/2.0 202 Accepted\r\nv: SIP/2.0/UDP a;rport;branch=z9hG4bK.imb-y, SIP/2.0/UDP b\r\ncseq: 1 MESSAGE\r\n\r\n")
	f.Add("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a ; branch = z9hG4bK.imb-z\r\nCSeq: 2 INFO\r\n\r\n")
	p := sip.NewParser()
	f.Fuzz(func(t *testing.T, msg string) {
		st, ok := scanStatus([]byte(msg))
		if !ok {
			return
		}
		m, err := p.ParseSIP([]byte(msg))
		if err != nil {
			return // the scan is only ever asked about what a peer sent: sipgo would drop it
		}
		res, isRes := m.(*sip.Response)
		if !isRes {
			t.Fatalf("scanned %+v from what sipgo parses as a request", st)
		}
		if res.StatusCode != st.code {
			t.Errorf("status %d, sipgo %d", st.code, res.StatusCode)
		}
		// sipgo reads no branch at all from some malformed Vias (a port that is not a
		// number...) that the scan reads: harmless, as a branch the bot did not make matches
		// nothing. Another branch than sipgo's would be a bug.
		if via := res.Via(); via != nil {
			if b, _ := via.Params.Get("branch"); b != "" && b != st.branch && strings.TrimSpace(b) != st.branch {
				t.Errorf("branch %q, sipgo %q", st.branch, b)
			}
		}
		if cseq := res.CSeq(); cseq != nil && string(cseq.MethodName) != st.method {
			t.Errorf("CSeq method %q, sipgo %q", st.method, cseq.MethodName)
		}
	})
}
