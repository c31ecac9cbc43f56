package bottest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Kind classifies a request the bot sent to the peer.
type Kind int

// The kinds of [Record].
const (
	// KindText is a MESSAGE carrying text: any text/* body, or the text
	// part of a multipart/alternative or message/cpim body.
	KindText Kind = iota
	// KindTyping is a typing notice: an INFO carrying a KeyboardActivity
	// document ([DialectMS]) or an RFC 3994 isComposing document
	// ([DialectIETF], normally a MESSAGE).
	KindTyping
	// KindBye is a BYE.
	KindBye
	// KindOther is anything else: OPTIONS, INVITE, a MESSAGE without text,
	// a typing document that does not parse, ...
	KindOther
)

// String returns "text", "typing", "bye" or "other".
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindTyping:
		return "typing"
	case KindBye:
		return "bye"
	case KindOther:
		return "other"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Record is one request the bot sent to the peer, as the peer received and
// answered it. ACKs are not recorded.
type Record struct {
	// Time is when the request arrived, taken when sipgo read it from the
	// socket. Records are kept in that order and their times never decrease.
	Time time.Time
	// Kind classifies the request.
	Kind Kind
	// Method is the request method.
	Method string
	// CallID is the request's Call-ID. Page-mode requests have one too;
	// in-dialog requests have their session's (see [Session.CallID]).
	CallID string
	// CSeq is the sequence number of the request's CSeq header.
	CSeq uint32
	// InDialog reports whether the request has a To-tag.
	InDialog bool
	// ContentType is the value of the Content-Type header, "" if absent.
	ContentType string
	// Text is the text of a KindText record, decoded as UTF-8 (bodies in
	// ISO-8859-1 are converted).
	Text string
	// Active is, for KindTyping, true for "type" (KeyboardActivity) and
	// "active" (isComposing), false for "idle".
	Active bool
	// Dialect is, for KindTyping, DialectMS for a KeyboardActivity document
	// and DialectIETF for an RFC 3994 isComposing document.
	Dialect Dialect
	// Refresh is, for an RFC 3994 isComposing record, the <refresh>
	// interval, 0 if absent.
	Refresh time.Duration
	// Status is the status code the peer answered with.
	Status int
	// Request is a copy of the request. Treat it as read-only: it is
	// shared by every copy of the record.
	Request *sip.Request
}

// String formats the record on one line, for logs and error messages.
func (r Record) String() string {
	var b strings.Builder
	b.WriteString(r.Method)
	switch r.Kind {
	case KindText:
		fmt.Fprintf(&b, " text %q", r.Text)
	case KindTyping:
		state := "idle"
		if r.Active {
			state = "active"
		}
		fmt.Fprintf(&b, " typing %s (%s)", state, r.Dialect)
	case KindOther:
		switch {
		case r.ContentType != "":
			fmt.Fprintf(&b, " %s", r.ContentType)
		case r.Request != nil && len(r.Request.Body()) > 0:
			fmt.Fprintf(&b, " without Content-Type (%d-byte body)", len(r.Request.Body()))
		}
	}
	if r.InDialog {
		fmt.Fprintf(&b, ", in dialog %s", r.CallID)
	} else {
		b.WriteString(", page mode")
	}
	fmt.Fprintf(&b, ", answered %d", r.Status)
	return b.String()
}

// IsText matches a KindText record with exactly this text.
func IsText(text string) func(Record) bool {
	return func(r Record) bool { return r.Kind == KindText && r.Text == text }
}

// IsTyping matches a KindTyping record in the given state, in either
// dialect.
func IsTyping(active bool) func(Record) bool {
	return func(r Record) bool { return r.Kind == KindTyping && r.Active == active }
}

// IsKind matches records of kind k.
func IsKind(k Kind) func(Record) bool {
	return func(r Record) bool { return r.Kind == k }
}

// record is a Record with its arrival sequence number.
type record struct {
	seq uint64
	Record
}

// addRecord inserts r in arrival order and wakes up waiters.
func (p *Peer) addRecord(seq uint64, r Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.records)
	if seq != 0 {
		for i > 0 && p.records[i-1].seq > seq {
			i--
		}
	}
	p.records = slices.Insert(p.records, i, record{seq: seq, Record: r})
	close(p.notify)
	p.notify = make(chan struct{})
}

// snapshot returns the records and a channel closed at the next change.
func (p *Peer) snapshot() ([]Record, <-chan struct{}) {
	recs, changed := p.snapshotSeq()
	out := make([]Record, len(recs))
	for i := range recs {
		out[i] = recs[i].Record
	}
	return out, changed
}

func (p *Peer) snapshotSeq() ([]record, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.records), p.notify
}

// Records returns a snapshot of everything the bot sent to the peer, page
// mode and in-dialog, in arrival order.
func (p *Peer) Records() []Record {
	recs, _ := p.snapshot()
	return recs
}

// Texts returns the texts of the KindText records received so far, in
// arrival order.
func (p *Peer) Texts() []string {
	var texts []string
	for _, r := range p.Records() {
		if r.Kind == KindText {
			texts = append(texts, r.Text)
		}
	}
	return texts
}

// Wait returns the first record, already received or still to come, for
// which match returns true. It gives up when ctx is done, with an error
// that wraps ctx.Err() and lists everything received, or when the peer is
// closed. match is called without locks held and may call other methods of
// the peer.
func (p *Peer) Wait(ctx context.Context, match func(Record) bool) (Record, error) {
	return p.wait(ctx, nil, match)
}

// WaitText waits for a KindText record with exactly this text; see Wait.
func (p *Peer) WaitText(ctx context.Context, text string) (Record, error) {
	return p.wait(ctx, nil, IsText(text))
}

func (p *Peer) wait(ctx context.Context, filter, match func(Record) bool) (Record, error) {
	start := time.Now()
	for {
		seqRecs, changed := p.snapshotSeq()
		recs := make([]Record, len(seqRecs))
		for i := range seqRecs {
			recs[i] = seqRecs[i].Record
		}
		// A record can be inserted before the last one seen (it arrived
		// earlier but its handler ran later), so rescan everything.
		for _, r := range seqRecs {
			if (filter == nil || filter(r.Record)) && match(r.Record) {
				// What arrived before it is recorded too when the wait returns.
				if r.seq != 0 {
					if err := p.arrivals.waitBefore(ctx, r.seq); err != nil {
						return Record{}, fmt.Errorf("bottest: waiting for the requests that came before %s: %w", r.Record, err)
					}
				}
				return r.Record, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Record{}, fmt.Errorf("bottest: no matching request from the bot after %v: %w\n%s",
				time.Since(start).Round(time.Millisecond), ctx.Err(), describe(recs, filter, start))
		case <-p.closed:
			return Record{}, fmt.Errorf("%w while waiting\n%s", errClosed, describe(recs, filter, start))
		}
	}
}

// describe lists records for an error message.
func describe(recs []Record, filter func(Record) bool, start time.Time) string {
	var b strings.Builder
	n := 0
	for _, r := range recs {
		if filter != nil && !filter(r) {
			continue
		}
		n++
		fmt.Fprintf(&b, "\n  %d. %+v: %s", n, r.Time.Sub(start).Round(time.Millisecond), r)
	}
	if n == 0 {
		return "nothing received from the bot"
	}
	return fmt.Sprintf("received %d requests (times relative to the start of the wait):%s", n, b.String())
}
