// Package invariants records what a test client asked of a Pier cluster
// and what came back (History), and judges that record against the
// registry's invariants: no acknowledged push lost, no wrong bytes, a name
// bound to one digest, read-after-write, linearizable tags, one leader
// with every member alive. The chaos suite (testing/chaos, on Docker) and
// the in-process scenarios (testing/clustertest) share it, so both hold
// the cluster to the same rules; every checker is tested against a
// planted fault (checks_test.go).
package invariants

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"sync"
	"time"
)

// Kind names what an operation did.
type Kind string

const (
	KindPush   Kind = "push"   // PUT /artifacts/{name}
	KindPull   Kind = "pull"   // GET /artifacts/{name}, by the workload
	KindVerify Kind = "verify" // GET /artifacts/{name}, by a checkpoint
	KindTag    Kind = "tag"    // PUT /api/v1/tags/{tag}?name=
	KindUntag  Kind = "untag"  // DELETE /api/v1/tags/{tag}?name=
	KindInfo   Kind = "info"   // GET /api/v1/artifacts/{name}
	KindLatest Kind = "latest" // GET /api/v1/latest?prefix=&tag=
)

// Outcome says whether an operation took effect.
type Outcome string

const (
	// OK: the server answered 2xx (3xx for latest).
	OK Outcome = "ok"
	// Fail: the operation certainly did not take effect (a 4xx answer, or
	// the connection was refused before anything was sent).
	Fail Outcome = "fail"
	// Unknown: it may or may not have taken effect (a 5xx, a timeout, a
	// connection lost mid-request).
	Unknown Outcome = "unknown"
)

// Op is one operation of the history: who asked which node for what, when,
// and what came back. Times are offsets from the start of the run on the
// driver's monotonic clock.
type Op struct {
	ID       int64         `json:"id"`
	Scenario string        `json:"scenario"`
	Phase    string        `json:"phase,omitempty"` // verify: the checkpoint
	Kind     Kind          `json:"kind"`
	Client   int           `json:"client"`
	Node     string        `json:"node"`
	Name     string        `json:"name,omitempty"`
	Tag      string        `json:"tag,omitempty"`
	Start    time.Duration `json:"start"`
	End      time.Duration `json:"end"`
	Outcome  Outcome       `json:"outcome"`
	Status   int           `json:"status,omitempty"` // HTTP status when one came back
	ErrKind  string        `json:"err_kind,omitempty"`
	Err      string        `json:"err,omitempty"`

	// Push: Size and Sent describe the bytes sent; Digest is the digest in
	// the acknowledgement. Pull and verify: Size and Digest describe the
	// bytes received, Announced is the ETag's digest and Complete says the
	// whole announced body arrived without a transport error. Info, tag,
	// untag: Digest and Tags are the artifact's metadata in the answer.
	// Latest: Result is the name the redirect points at.
	Size      int64    `json:"size,omitempty"`
	Sent      string   `json:"sent,omitempty"`
	Digest    string   `json:"digest,omitempty"`
	Announced string   `json:"announced,omitempty"`
	Complete  bool     `json:"complete,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Result    string   `json:"result,omitempty"`
}

// Acked reports whether op is an acknowledged push.
func (o Op) Acked() bool { return o.Kind == KindPush && o.Outcome == OK }

// IsRead reports whether op fetched an artifact's bytes.
func (o Op) IsRead() bool { return o.Kind == KindPull || o.Kind == KindVerify }

// History is the append-only record of a run, safe for concurrent use.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []Op
}

// NewHistory starts a history whose clock reads zero now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the current offset on the history's clock.
func (h *History) Now() time.Duration { return time.Since(h.start) }

// Add records a finished operation and returns it with its ID set.
func (h *History) Add(op Op) Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	op.ID = int64(len(h.ops))
	h.ops = append(h.ops, op)
	return op
}

// Ops returns a copy of every operation recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Scenario returns the operations recorded during one scenario.
func (h *History) Scenario(name string) []Op {
	return slices.DeleteFunc(h.Ops(), func(o Op) bool { return o.Scenario != name })
}

// WriteJSONL writes the history to path, one operation per line.
func (h *History) WriteJSONL(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, op := range h.Ops() {
		if err := enc.Encode(op); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Acks maps every name acknowledged in ops to its first acknowledgement.
func Acks(ops []Op) map[string]Op {
	acks := map[string]Op{}
	for _, o := range ops {
		if !o.Acked() {
			continue
		}
		if prev, ok := acks[o.Name]; !ok || o.End < prev.End {
			acks[o.Name] = o
		}
	}
	return acks
}
