package fsm

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// AbandonTTL is how long an abandoned object ID stays fenced. A put that
// carries it can only arrive late by the time a forwarded batch spends in
// flight or an entry waits for a new leader to commit it: seconds to
// minutes. A day is far beyond both and keeps the set small.
const AbandonTTL = 24 * time.Hour

// AbandonObject fences an object ID whose push gave up without knowing
// whether its put committed (a forward that timed out): the put may still
// be in flight. Raft orders the two. If the put came first, the object is
// bound and the abandon answers StatusExists: its shards stay. Otherwise
// the ID is recorded, a later put that would bind it is refused, and the
// pusher may delete the shards: no name can ever point at them.
type AbandonObject struct {
	ID string `json:"id"`
}

// abandoned holds fenced object IDs with the time they were fenced, so
// that abandon entries can be pruned after AbandonTTL by command time.
// It is small: only pushes whose commit's fate was unknown land here.
type abandoned map[string]time.Time

func (s *state) abandon(c Command) Result {
	id := c.Abandon.ID
	if o, ok := s.byID.get(id); ok {
		return Result{Status: StatusExists, Message: fmt.Sprintf("object %s is bound to %s", id, o.digest)}
	}
	// Copy on write: a frozen snapshot shares the map.
	next := make(abandoned, len(s.abandoned)+1)
	for k, t := range s.abandoned {
		if c.Time.Sub(t) < AbandonTTL {
			next[k] = t
		}
	}
	next[id] = c.Time.UTC()
	s.abandoned = next
	return Result{Status: StatusCreated, Message: id}
}

// refusesObject reports a put that would bind an abandoned object.
func (s *state) refusesObject(id string) (Result, bool) {
	if _, ok := s.abandoned[id]; !ok {
		return Result{}, false
	}
	return Result{Status: StatusConflict, Message: fmt.Sprintf("object %s was abandoned by its pusher", id)}, true
}

func validateAbandon(a *AbandonObject) error {
	if a == nil {
		return fmt.Errorf("%w: abandon command without body", ErrInvalid)
	}
	if !validObjectID(a.ID) {
		return fmt.Errorf("%w: object id %q", ErrInvalid, a.ID)
	}
	return nil
}

// abandonRec is the snapshot record of one fenced ID.
type abandonRec struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// abandonRecs lists the fenced IDs in key order, so that every node
// writes the same snapshot bytes.
func (a abandoned) recs() []abandonRec {
	out := make([]abandonRec, 0, len(a))
	for _, id := range slices.Sorted(maps.Keys(a)) {
		out = append(out, abandonRec{ID: id, Time: a[id]})
	}
	return out
}

// Abandoned reports whether an object ID is fenced (AbandonObject).
func (f *FSM) Abandoned(id string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.s.abandoned[id]
	return ok
}
