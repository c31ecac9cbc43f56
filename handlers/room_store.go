package handlers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/imbot-dev/imbot/store"
)

// storeCtx is the context of a write to the Store: the step happened, so it is recorded
// even when the event that caused it was cancelled.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// save writes rm to the Store as it is now, or deletes it once closed. Writes are
// serialised, each taking the room as it is when written, so the Store never goes back to
// an older state.
func (r *Rooms) save(ctx context.Context, rm *Room) {
	if r.cfg.Store == nil {
		return
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	r.mu.Lock()
	closed := rm.closed
	rec := store.Room{ID: rm.id, Created: rm.created, Silent: rm.opts.Silent, LeaveOnIdle: rm.opts.LeaveOnIdle}
	for _, m := range rm.members {
		p := m.Participant
		rec.Participants = append(rec.Participants, store.RoomParticipant{
			URI: p.URI, Verified: p.Verified, Name: p.Name, Key: p.Key, Joined: p.Joined, Managed: p.Managed,
		})
	}
	r.mu.Unlock()
	ctx, cancel := storeCtx(ctx)
	defer cancel()
	var err error
	if closed {
		err = r.cfg.Store.DeleteRoom(ctx, rm.id)
	} else {
		err = r.cfg.Store.SaveRoom(ctx, rec)
	}
	if err != nil {
		r.log.Error("room: not written to the store: a restart would lose this step", "room", rm.id, "err", err)
	}
}

// persist writes the deliveries ds of rm to the Store before they are sent.
func (r *Rooms) persist(ctx context.Context, rm *Room, ds []store.RoomDelivery) {
	if r.cfg.Store == nil || len(ds) == 0 {
		return
	}
	r.pmu.Lock() // after the room's own write, never before it
	defer r.pmu.Unlock()
	r.mu.Lock()
	closed := rm.closed
	r.mu.Unlock()
	if closed {
		return
	}
	ctx, cancel := storeCtx(ctx)
	defer cancel()
	if err := r.cfg.Store.AddRoomDeliveries(ctx, ds); err != nil {
		r.log.Error("room: lines not written to the store: a restart would lose them if undelivered", "room", rm.id, "err", err)
	}
}

// forget deletes the deliveries ds of rm from the Store: delivered, or their recipient left.
func (r *Rooms) forget(ctx context.Context, rm *Room, ds []store.RoomDelivery) {
	if r.cfg.Store == nil || len(ds) == 0 {
		return
	}
	ctx, cancel := storeCtx(ctx)
	defer cancel()
	for _, d := range ds {
		if err := r.cfg.Store.DeleteRoomDelivery(ctx, rm.id, d.Seq); err != nil {
			r.log.Error("room: delivery not forgotten: a restart would send it again", "room", rm.id, "seq", d.Seq, "err", err)
		}
	}
}

// Restore resumes the rooms RoomsConfig.Store kept, as a previous process left them (see
// Rooms); without a Store it does nothing. Call it once, before the bot serves. It returns
// once the rooms are back in place; the notices to the participants and the lines not
// delivered yet follow, after RoomsConfig.Ready when set.
func (r *Rooms) Restore(ctx context.Context) error {
	if r.cfg.Store == nil {
		return nil
	}
	recs, err := r.cfg.Store.Rooms(ctx)
	if err != nil {
		return fmt.Errorf("handlers: restore rooms: %w", err)
	}
	pending := map[string][]store.RoomDelivery{}
	for _, rec := range recs {
		ds, err := r.cfg.Store.RoomDeliveries(ctx, rec.ID)
		if err != nil {
			return fmt.Errorf("handlers: restore rooms: %w", err)
		}
		pending[rec.ID] = ds
	}
	var restored []*Room
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("handlers: restore rooms: the rooms are closed")
	}
	for _, rec := range recs {
		if r.rooms[rec.ID] != nil {
			continue // restored already
		}
		rm := &Room{rs: r, id: rec.ID, created: rec.Created, opts: RoomOptions{ID: rec.ID, Silent: rec.Silent, LeaveOnIdle: rec.LeaveOnIdle}}
		for _, p := range rec.Participants {
			a, err := parseAddr(p.URI)
			if err != nil {
				r.log.Warn("room: participant with an unreadable address dropped", "room", rec.ID, "participant", p.URI)
				continue
			}
			m := &member{
				Participant: Participant{URI: p.URI, Name: p.Name, Verified: p.Verified, Key: p.Key, Joined: p.Joined, Managed: p.Managed},
				room:        rm, addr: a,
			}
			rm.members = append(rm.members, m)
			k := addrKey(a)
			r.byAddr[k] = append(r.byAddr[k], m)
		}
		for _, d := range pending[rec.ID] {
			rm.seq = max(rm.seq, d.Seq)
			for _, m := range rm.members {
				if m.URI == d.To {
					m.outbox = append(m.outbox, d)
				}
			}
		}
		if !rm.opts.Silent {
			for _, m := range rm.members {
				if m.Managed {
					continue // its owner tells it
				}
				m.notice = r.fill(r.texts.Resumed, "", "", "{names}", namesBut(rm.members, m, r.cfg.BotName))
			}
		}
		r.rooms[rm.id] = rm
		restored = append(restored, rm)
		r.log.Info("room restored", "room", rm.id, "participants", len(rm.members), "undelivered", len(pending[rec.ID]))
	}
	if r.cfg.Ready != nil {
		r.wg.Add(1) // before Close can wait
	}
	r.mu.Unlock()

	resume := func() {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
		defer cancel()
		for _, rm := range restored {
			r.mu.Lock()
			ms := slices.Clone(rm.members)
			r.mu.Unlock()
			for _, m := range ms {
				_ = rm.deliver(ctx, roomSink{}, m)
			}
		}
	}
	if r.cfg.Ready == nil {
		resume()
		return nil
	}
	go func() {
		defer r.wg.Done()
		select {
		case <-r.cfg.Ready:
			resume()
		case <-r.ctx.Done():
		}
	}()
	return nil
}

// namesBut is the names of ms but m, joined for texts; def when there are none.
func namesBut(ms []*member, m *member, def string) string {
	var ns []string
	for _, o := range ms {
		if o != m {
			ns = append(ns, o.Name)
		}
	}
	if len(ns) == 0 {
		return def
	}
	return joinNames(ns)
}
