// Package storetest checks that a store behaves as imbot expects: the same suite runs
// against store.Memory, store/sqlite and store/postgres, and against any other
// implementation that wants to be a drop-in replacement. Times are compared to the
// microsecond (PostgreSQL keeps no finer).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// Store is everything a complete imbot store provides.
type Store interface {
	store.StateStore
	store.HandoffStore
	store.RoomStore
	store.LeaseStore
	AppendTranscript(ctx context.Context, e store.TranscriptEntry) error
	Transcript(ctx context.Context, key string, limit int) ([]store.TranscriptEntry, error)
	CreateTicket(ctx context.Context, t store.Ticket) (int64, error)
	Ticket(ctx context.Context, number int64) (store.Ticket, error)
	UpdateTicket(ctx context.Context, t store.Ticket) error
	Tickets(ctx context.Context, key string, limit int) ([]store.Ticket, error)
	AppendUnmatched(ctx context.Context, u store.Unmatched) error
	Unmatched(ctx context.Context, limit int) ([]store.Unmatched, error)
	AddRating(ctx context.Context, r store.Rating) error
	Ratings(ctx context.Context, limit int) ([]store.Rating, error)
}

// Run runs the suite as subtests of t. open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := map[string]func(t *testing.T, s Store){
		"conversation round trip":  conversationRoundTrip,
		"conversation missing":     conversationMissing,
		"conversation updated":     conversationUpdated,
		"conversation delete":      conversationDelete,
		"transcript":               transcript,
		"transcript in time order": transcriptTimeOrder,
		"tickets":                  tickets,
		"unmatched":                unmatched,
		"ratings":                  ratings,
		"concurrent":               concurrent,
		"handoffs":                 handoffs,
		"handoff numbering":        handoffNumbering,
		"rooms":                    rooms,
		"room deliveries":          roomDeliveries,
		"leases":                   leases,
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) { f(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func conversationRoundTrip(t *testing.T, s Store) {
	c := ctx(t)
	want := store.ConversationState{
		State: "ask-username",
		Vars: map[string]any{
			"name":    "Alice",
			"ticket":  1001,
			"ratio":   0.5,
			"ok":      true,
			"tags":    []any{"vpn", 2},
			"counter": map[string]any{"greet": 3},
		},
		Updated: time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC), // stores keep microseconds at least
	}
	if err := s.Save(c, "k1", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(c, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Updated.Equal(want.Updated) {
		t.Errorf("Updated = %v, want %v", got.Updated, want.Updated)
	}
	got.Updated = want.Updated
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %#v\nwant %#v", got, want)
	}
	// Saving replaces.
	if err := s.Save(c, "k1", store.ConversationState{State: "done"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load(c, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "done" || len(got.Vars) != 0 || got.Updated.IsZero() {
		t.Errorf("after replace: %#v", got)
	}
}

// conversationUpdated: each save of a key replaces its time too, not only its state.
func conversationUpdated(t *testing.T, s Store) {
	c := ctx(t)
	t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	for i, state := range []string{"one", "two", "three"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := s.Save(c, "k", store.ConversationState{State: state, Updated: at}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(c, "k")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != state || !got.Updated.Equal(at) {
			t.Errorf("save %d: state %q updated %v; want %q updated %v", i+1, got.State, got.Updated, state, at)
		}
	}
}

func conversationMissing(t *testing.T, s Store) {
	got, err := s.Load(ctx(t), "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "" || len(got.Vars) != 0 {
		t.Errorf("Load of a missing key = %#v, want zero", got)
	}
}

func conversationDelete(t *testing.T, s Store) {
	c := ctx(t)
	if err := s.Save(c, "k", store.ConversationState{State: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "k"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	got, err := s.Load(c, "k")
	if err != nil || got.State != "" {
		t.Errorf("after Delete: %#v, %v", got, err)
	}
}

func transcript(t *testing.T, s Store) {
	c := ctx(t)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		dir := store.In
		if i%2 == 1 {
			dir = store.Out
		}
		for _, key := range []string{"a", "b"} {
			e := store.TranscriptEntry{SessionID: "s1", Key: key, Direction: dir, Peer: "sip:" + key + "@x",
				Text: fmt.Sprintf("%s%d", key, i), Time: t0.Add(time.Duration(i) * time.Second), Answerer: "r"}
			if err := s.AppendTranscript(c, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all", 0, []string{"a0", "a1", "a2", "a3", "a4"}},
		{"last two", 2, []string{"a3", "a4"}},
		{"more than there is", 50, []string{"a0", "a1", "a2", "a3", "a4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Transcript(c, "a", tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, e := range got {
				texts = append(texts, e.Text)
			}
			if !reflect.DeepEqual(texts, tt.want) {
				t.Errorf("texts = %q, want %q", texts, tt.want)
			}
		})
	}
	got, _ := s.Transcript(c, "a", 0)
	e := got[1]
	if e.ID == 0 || e.SessionID != "s1" || e.Direction != store.Out || e.Peer != "sip:a@x" || e.Answerer != "r" || !e.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("entry = %#v", e)
	}
	if got[0].ID >= got[1].ID {
		t.Errorf("IDs do not grow: %d, %d", got[0].ID, got[1].ID)
	}
	if none, err := s.Transcript(c, "zzz", 0); err != nil || len(none) != 0 {
		t.Errorf("transcript of an unknown key = %v, %v", none, err)
	}
	if err := s.AppendTranscript(c, store.TranscriptEntry{Key: "a", Text: "now", Direction: store.In}); err != nil {
		t.Fatal(err)
	}
	last, _ := s.Transcript(c, "a", 1)
	if len(last) != 1 || time.Since(last[0].Time) > time.Minute {
		t.Errorf("a zero Time is not stored as now: %#v", last)
	}
}

// transcriptTimeOrder: entries come back in the order of their times, not the order they
// were written in (a relayed message is written once delivered, after the user's answer to
// it may already be), and times that differ by trailing zeros of the fraction still sort.
func transcriptTimeOrder(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	entries := []store.TranscriptEntry{
		{Text: "third", Time: base.Add(1200 * time.Millisecond), Direction: store.In},
		{Text: "first", Time: base.Add(100 * time.Millisecond), Direction: store.Out},
		{Text: "second", Time: base.Add(120 * time.Millisecond), Direction: store.In},
	}
	for _, e := range entries {
		e.Key, e.SessionID, e.Peer = "k", "s", "sip:alice@example.com"
		if err := s.AppendTranscript(c, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Transcript(c, "k", 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range got {
		texts = append(texts, e.Text)
	}
	if fmt.Sprint(texts) != "[first second third]" {
		t.Errorf("transcript order %v, want [first second third]", texts)
	}
	last, err := s.Transcript(c, "k", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[0].Text != "second" || last[1].Text != "third" {
		t.Errorf("last 2 entries %+v, want second and third", last)
	}
}

func tickets(t *testing.T, s Store) {
	c := ctx(t)
	n1, err := s.CreateTicket(c, store.Ticket{Key: "k", Peer: "sip:a@x", Summary: "VPN down", Urgency: "high"})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := s.CreateTicket(c, store.Ticket{Key: "k2", Peer: "sip:b@x", Summary: "printer", Status: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if n1 != 1001 || n2 != 1002 {
		t.Errorf("ticket numbers = %d, %d; want 1001, 1002", n1, n2)
	}
	got, err := s.Ticket(c, n1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Number != n1 || got.Key != "k" || got.Peer != "sip:a@x" || got.Summary != "VPN down" || got.Urgency != "high" ||
		got.Status != store.StatusOpen || got.Created.IsZero() || got.Updated.IsZero() {
		t.Errorf("Ticket = %#v", got)
	}
	if got, _ := s.Ticket(c, n2); got.Status != "new" {
		t.Errorf("status given at creation not kept: %q", got.Status)
	}
	got.Status, got.Assignee, got.Notes = store.StatusClosed, "sip:agent@x", "fixed"
	if err := s.UpdateTicket(c, got); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Ticket(c, n1)
	if again.Status != store.StatusClosed || again.Assignee != "sip:agent@x" || again.Notes != "fixed" || again.Summary != "VPN down" {
		t.Errorf("after update: %#v", again)
	}
	for _, n := range []int64{0, 999, 5000} {
		if _, err := s.Ticket(c, n); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Ticket(%d) error = %v, want ErrNotFound", n, err)
		}
	}
	if err := s.UpdateTicket(c, store.Ticket{Number: 5000}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateTicket of a missing ticket: %v, want ErrNotFound", err)
	}
	list, err := s.Tickets(c, "k", 0)
	if err != nil || len(list) != 1 || list[0].Number != n1 {
		t.Errorf("Tickets(k) = %v, %v", list, err)
	}
}

func unmatched(t *testing.T, s Store) {
	c := ctx(t)
	for _, q := range []string{"q1", "q2", "q3"} {
		if err := s.AppendUnmatched(c, store.Unmatched{Key: "k", SessionID: "s", Peer: "sip:a@x", Text: q}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Unmatched(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Text != "q2" || got[1].Text != "q3" || got[1].Peer != "sip:a@x" || got[1].Time.IsZero() {
		t.Errorf("Unmatched(2) = %#v", got)
	}
}

func ratings(t *testing.T, s Store) {
	c := ctx(t)
	if err := s.AddRating(c, store.Rating{Key: "k", SessionID: "s", Peer: "sip:a@x", Score: 5, Comment: "great"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Ratings(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Score != 5 || got[0].Comment != "great" || got[0].Key != "k" || got[0].Time.IsZero() ||
		got[0].Agent != "" || got[0].HandoffID != 0 {
		t.Errorf("Ratings = %#v", got)
	}
	// A rating that follows a handoff keeps its agent and handoff.
	if err := s.AddRating(c, store.Rating{Key: "k", SessionID: "s", Peer: "sip:a@x", Score: 4, Agent: "sip:bob@x", HandoffID: 7}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Ratings(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Score != 4 || got[0].Agent != "sip:bob@x" || got[0].HandoffID != 7 {
		t.Errorf("Ratings(1) after a handoff's rating = %#v", got)
	}
}

// concurrent writes and reads from many goroutines, as sessions of a busy bot do.
func concurrent(t *testing.T, s Store) {
	c := ctx(t)
	const workers, each = 32, 20
	var wg sync.WaitGroup
	numbers := make(chan int64, workers*each)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("user%d", w)
			for i := range each {
				conv, err := s.Load(c, key)
				if err != nil {
					errs <- err
					return
				}
				n, _ := conv.Vars["n"].(int)
				if err := s.Save(c, key, store.ConversationState{State: "s", Vars: map[string]any{"n": n + 1}}); err != nil {
					errs <- err
					return
				}
				if err := s.AppendTranscript(c, store.TranscriptEntry{Key: key, Direction: store.In, Text: fmt.Sprint(i)}); err != nil {
					errs <- err
					return
				}
				num, err := s.CreateTicket(c, store.Ticket{Key: key, Summary: "x"})
				if err != nil {
					errs <- err
					return
				}
				numbers <- num
				if _, err := s.Transcript(c, key, 5); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(numbers)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for n := range numbers {
		if seen[n] {
			t.Fatalf("ticket number %d given twice", n)
		}
		seen[n] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d tickets, want %d", len(seen), workers*each)
	}
	for w := range workers {
		key := fmt.Sprintf("user%d", w)
		conv, err := s.Load(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if conv.Vars["n"] != each {
			t.Errorf("%s: n = %v, want %d (a lost update)", key, conv.Vars["n"], each)
		}
		tr, err := s.Transcript(c, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr) != each {
			t.Errorf("%s: %d transcript entries, want %d", key, len(tr), each)
		}
		for i, e := range tr {
			if e.Text != fmt.Sprint(i) {
				t.Errorf("%s: entry %d is %q: out of order", key, i, e.Text)
				break
			}
		}
	}
}

// handoffs: a handoff is saved with everything a restarted bot needs, replaced on each
// transition and forgotten when it ends; Handoffs lists them by number.
func handoffs(t *testing.T, s Store) {
	c := ctx(t)
	got, err := s.Handoffs(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("Handoffs of an empty store = %#v, %v", got, err)
	}
	t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	waiting := store.Handoff{
		ID: 2, UserKey: "k2", UserURI: "sip:bob@x", UserName: "Bob", Reason: "agent please",
		State: store.HandoffWaiting, Deadline: t0.Add(2 * time.Minute), Started: t0,
	}
	offered := store.Handoff{
		ID: 1, UserKey: "k1", UserURI: "sip:alice@x", Verified: true, UserName: "Alice", Reason: "human",
		State: store.HandoffOffered, Agent: "sip:ann@x", Deadline: t0.Add(time.Minute), Started: t0.Add(-time.Second),
		Tried: []string{"sip:bo@x"}, Pending: []string{"it is urgent", "hello?"},
		Offered: []string{"sip:ann@x", "sip:cy@x"}, OfferDeadline: t0.Add(30 * time.Second), Lapsed: []string{"sip:dee@x"},
	}
	for _, h := range []store.Handoff{waiting, offered} {
		if err := s.SaveHandoff(c, h); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want ...store.Handoff) {
		t.Helper()
		got, err := s.Handoffs(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: Handoffs = %#v, want %#v", what, got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.Deadline.Equal(w.Deadline) || !g.Started.Equal(w.Started) || !g.OfferDeadline.Equal(w.OfferDeadline) {
				t.Errorf("%s: handoff %d: deadline %v started %v offer deadline %v, want %v %v %v", what, w.ID,
					g.Deadline, g.Started, g.OfferDeadline, w.Deadline, w.Started, w.OfferDeadline)
			}
			g.Deadline, g.Started, g.OfferDeadline = w.Deadline, w.Started, w.OfferDeadline
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: handoff %d = %#v\nwant %#v", what, w.ID, g, w)
			}
		}
	}
	check("saved", offered, waiting)
	// Accepted: replaced, the deadline gone.
	accepted := offered.Clone()
	accepted.State, accepted.Deadline, accepted.Pending = store.HandoffAccepted, time.Time{}, nil
	accepted.Offered, accepted.OfferDeadline = nil, time.Time{}
	if err := s.SaveHandoff(c, accepted); err != nil {
		t.Fatal(err)
	}
	// The store keeps a copy: changing the caller's slices afterwards changes nothing stored.
	want := accepted.Clone()
	accepted.Tried[0] = "sip:changed@x"
	accepted.Lapsed[0] = "sip:changed@x"
	check("accepted", want, waiting)
	if err := s.DeleteHandoff(c, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHandoff(c, 1); err != nil {
		t.Errorf("deleting a missing handoff: %v", err)
	}
	check("deleted", waiting)
}

// handoffNumbering: LastHandoffID is the highest number ever saved, even once its handoff
// was deleted, so that numbering continues after a restart.
func handoffNumbering(t *testing.T, s Store) {
	c := ctx(t)
	if n, err := s.LastHandoffID(c); err != nil || n != 0 {
		t.Fatalf("LastHandoffID of an empty store = %d, %v", n, err)
	}
	steps := []struct {
		save, del int64
		want      int64
	}{
		{save: 1, want: 1},
		{save: 3, want: 3},
		{save: 2, want: 3},
		{del: 3, want: 3},
		{del: 2, want: 3},
	}
	for i, st := range steps {
		if st.save != 0 {
			if err := s.SaveHandoff(c, store.Handoff{ID: st.save, UserKey: "k", State: store.HandoffWaiting}); err != nil {
				t.Fatal(err)
			}
		}
		if st.del != 0 {
			if err := s.DeleteHandoff(c, st.del); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.LastHandoffID(c); err != nil || n != st.want {
			t.Errorf("step %d: LastHandoffID = %d, %v; want %d", i+1, n, err, st.want)
		}
	}
}

// rooms: a room is saved with its participants, replaced on each change and forgotten with
// its deliveries when it closes; Rooms lists them by ID.
func rooms(t *testing.T, s Store) {
	c := ctx(t)
	got, err := s.Rooms(c)
	if err != nil || len(got) != 0 {
		t.Fatalf("Rooms of an empty store = %#v, %v", got, err)
	}
	t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	b := store.Room{ID: "b", Created: t0, Silent: true, Participants: []store.RoomParticipant{
		{URI: "sip:alice@x", Name: "Alice", Key: "sip:bot@x sip:alice@x unverified", Joined: t0, Managed: true},
	}}
	a := store.Room{ID: "a", Created: t0.Add(time.Second), LeaveOnIdle: true, Participants: []store.RoomParticipant{
		{URI: "sip:ann@x", Verified: true, Name: "Ann", Joined: t0.Add(time.Second)},
		{URI: "sip:sam@x", Verified: true, Name: "Sam", Joined: t0.Add(2 * time.Second)},
	}}
	for _, r := range []store.Room{b, a} {
		if err := s.SaveRoom(c, r); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want ...store.Room) {
		t.Helper()
		got, err := s.Rooms(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: Rooms = %#v, want %#v", what, got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.Created.Equal(w.Created) {
				t.Errorf("%s: room %s created %v, want %v", what, w.ID, g.Created, w.Created)
			}
			g.Created = w.Created
			if len(g.Participants) == len(w.Participants) {
				g.Participants = slices.Clone(g.Participants)
				for j := range w.Participants {
					if !g.Participants[j].Joined.Equal(w.Participants[j].Joined) {
						t.Errorf("%s: room %s participant %d joined %v, want %v", what, w.ID, j, g.Participants[j].Joined, w.Participants[j].Joined)
					}
					g.Participants[j].Joined = w.Participants[j].Joined
				}
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: room %s = %#v\nwant %#v", what, w.ID, g, w)
			}
		}
	}
	check("saved", a, b)
	// A participant leaves: the room is replaced, and the store kept a copy.
	left := a.Clone()
	left.Participants = left.Participants[:1]
	if err := s.SaveRoom(c, left); err != nil {
		t.Fatal(err)
	}
	want := left.Clone()
	left.Participants[0].Name = "changed"
	check("left", want, b)
	if err := s.AddRoomDeliveries(c, []store.RoomDelivery{{Room: "a", Seq: 1, To: "sip:ann@x", Text: "Sam: hi", Time: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoom(c, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoom(c, "a"); err != nil {
		t.Errorf("deleting a missing room: %v", err)
	}
	check("deleted", b)
	if ds, err := s.RoomDeliveries(c, "a"); err != nil || len(ds) != 0 {
		t.Errorf("deliveries of a deleted room = %#v, %v", ds, err)
	}
}

// roomDeliveries: deliveries are kept until deleted, by room and in Seq order, whatever the
// order they were added in.
func roomDeliveries(t *testing.T, s Store) {
	c := ctx(t)
	for _, id := range []string{"r", "q"} {
		if err := s.SaveRoom(c, store.Room{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	d := func(room string, seq int64, to, text string) store.RoomDelivery {
		return store.RoomDelivery{Room: room, Seq: seq, To: to, Text: text, Time: t0.Add(time.Duration(seq) * time.Second)}
	}
	two := d("r", 3, "sip:b@x", "A: two")
	two.Answerer = "agent:A"
	if err := s.AddRoomDeliveries(c, []store.RoomDelivery{two, d("r", 2, "sip:c@x", "A: one")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoomDeliveries(c, []store.RoomDelivery{d("r", 1, "sip:b@x", "A: one"), d("q", 1, "sip:z@x", "Y: hey")}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRoomDeliveries(c, nil); err != nil {
		t.Errorf("adding no deliveries: %v", err)
	}
	check := func(what, room string, want ...store.RoomDelivery) {
		t.Helper()
		got, err := s.RoomDeliveries(c, room)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: RoomDeliveries(%s) = %#v, want %#v", what, room, got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.Time.Equal(w.Time) {
				t.Errorf("%s: delivery %d time %v, want %v", what, w.Seq, g.Time, w.Time)
			}
			g.Time = w.Time
			if g != w {
				t.Errorf("%s: delivery %d = %#v, want %#v", what, i, g, w)
			}
		}
	}
	check("added", "r", d("r", 1, "sip:b@x", "A: one"), d("r", 2, "sip:c@x", "A: one"), two)
	check("added", "q", d("q", 1, "sip:z@x", "Y: hey"))
	if err := s.DeleteRoomDelivery(c, "r", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRoomDelivery(c, "r", 2); err != nil {
		t.Errorf("deleting a missing delivery: %v", err)
	}
	check("delivered", "r", d("r", 1, "sip:b@x", "A: one"), two)
	check("other room untouched", "q", d("q", 1, "sip:z@x", "Y: hey"))
}

// leases: one owner at a time; the holder renews; another gets it once it is released or
// has ended; releasing another's lease does nothing.
func leases(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ttl := 10 * time.Second
	steps := []struct {
		what string
		do   func() (bool, error)
		want bool
	}{
		{"a takes k", func() (bool, error) { return s.AcquireLease(ctx, "k", "a", t0, ttl) }, true},
		{"b may not take k", func() (bool, error) { return s.AcquireLease(ctx, "k", "b", t0.Add(time.Second), ttl) }, false},
		{"b takes another key", func() (bool, error) { return s.AcquireLease(ctx, "k2", "b", t0, ttl) }, true},
		{"a renews k", func() (bool, error) { return s.AcquireLease(ctx, "k", "a", t0.Add(5*time.Second), ttl) }, true},
		{"b may not take k before the renewed end", func() (bool, error) { return s.AcquireLease(ctx, "k", "b", t0.Add(12*time.Second), ttl) }, false},
		{"b releasing k does nothing", func() (bool, error) {
			return true, s.ReleaseLease(ctx, "k", "b")
		}, true},
		{"so b still may not take k", func() (bool, error) { return s.AcquireLease(ctx, "k", "b", t0.Add(13*time.Second), ttl) }, false},
		{"b takes k once a's lease has ended", func() (bool, error) { return s.AcquireLease(ctx, "k", "b", t0.Add(15*time.Second), ttl) }, true},
		{"b releases k", func() (bool, error) { return true, s.ReleaseLease(ctx, "k", "b") }, true},
		{"a takes k at once", func() (bool, error) { return s.AcquireLease(ctx, "k", "a", t0.Add(16*time.Second), ttl) }, true},
	}
	for _, st := range steps {
		got, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if got != st.want {
			t.Fatalf("%s: got %v, want %v", st.what, got, st.want)
		}
	}
	holders := []struct {
		key  string
		at   time.Time
		want string
	}{
		{"k", t0.Add(17 * time.Second), "a"},
		{"k", t0.Add(26*time.Second - time.Millisecond), "a"},
		{"k", t0.Add(26 * time.Second), ""}, // a's lease has ended
		{"k2", t0, "b"},
		{"never", t0, ""},
	}
	for _, h := range holders {
		got, err := s.LeaseHolder(ctx, h.key, h.at)
		if err != nil {
			t.Fatalf("LeaseHolder(%q): %v", h.key, err)
		}
		if got != h.want {
			t.Errorf("LeaseHolder(%q) at %v: %q, want %q", h.key, h.at.Sub(t0), got, h.want)
		}
	}
}
