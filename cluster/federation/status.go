package federation

import (
	"context"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// ConflictView is a conflict as status shows it.
type ConflictView struct {
	Name         string `json:"name"`
	LocalDigest  string `json:"local_digest"`
	RemoteDigest string `json:"remote_digest"`
}

// RemoteStatus is how this cluster stands with one other datacenter.
type RemoteStatus struct {
	Datacenter string `json:"datacenter"`
	// Reachable: a node of it answered a feed read just now.
	Reachable bool `json:"reachable"`
	// LagArtifacts, LagBytes and LagSeconds are what its feed holds after
	// the checkpoint: names, their bytes, and the age of the oldest change.
	LagArtifacts int     `json:"lag_artifacts"`
	LagBytes     int64   `json:"lag_bytes"`
	LagSeconds   float64 `json:"lag_seconds"`
	// Checkpoint is the index of its feed copied up to; Head its last.
	Checkpoint uint64 `json:"checkpoint"`
	Head       uint64 `json:"head"`
	// Errors counts failed replication passes on this node since it
	// started (the leader's count; 0 on other nodes), LastError the last.
	Errors    int64          `json:"errors"`
	LastError string         `json:"last_error,omitempty"`
	Copied    int64          `json:"copied"`
	Conflicts []ConflictView `json:"conflicts"`
	// AntiEntropy is what the last comparison of the two states did (the
	// leader's; absent before its first run and on other nodes).
	AntiEntropy *AntiEntropyStatus `json:"anti_entropy,omitempty"`
}

// Status asks a node of every other datacenter for the lag after this
// cluster's checkpoint (a few seconds at most per datacenter), so any node
// answers it, leader or not.
func (f *Federation) Status(ctx context.Context) []RemoteStatus {
	out := []RemoteStatus{}
	st := f.cfg.Local.FSM()
	for _, dc := range f.Datacenters() {
		cp, _ := st.Checkpoint(dc)
		rs := RemoteStatus{Datacenter: dc, Checkpoint: cp.Index, Conflicts: []ConflictView{}}
		for _, c := range st.Conflicts(dc) {
			rs.Conflicts = append(rs.Conflicts, ConflictView{Name: c.Name, LocalDigest: c.LocalDigest, RemoteDigest: c.RemoteDigest})
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		page, _, err := f.read(rctx, f.addrs(dc), cp.Index, 0)
		cancel()
		if err == nil {
			rs.Reachable = true
			rs.Head = page.Lag.Head
			rs.LagArtifacts, rs.LagBytes = page.Lag.Count, page.Lag.Bytes
			if page.Lag.Count > 0 && !page.Lag.Oldest.IsZero() {
				rs.LagSeconds = max(0, f.cfg.Now().Sub(page.Lag.Oldest).Seconds())
			}
		}
		f.mu.Lock()
		if s, ok := f.peers[dc]; ok {
			rs.Errors, rs.LastError, rs.Copied = s.errors, s.lastError, s.copied
			if !s.ae.LastRun.IsZero() {
				ae := s.ae
				rs.AntiEntropy = &ae
			}
		}
		f.mu.Unlock()
		out = append(out, rs)
	}
	return out
}

// Lag is what the replicator last saw of a datacenter, for metrics: no
// call to another datacenter at scrape time.
type Lag struct {
	Datacenter string
	Checkpoint uint64
	Reachable  bool
	Lag        fsm.FeedLag
	Errors     int64
	Copied     int64
	Conflicts  int
	// Repaired counts names anti-entropy brought into line.
	Repaired int64
}

// Lags returns the replicator's last view of every datacenter.
func (f *Federation) Lags() []Lag {
	st := f.cfg.Local.FSM()
	var out []Lag
	for _, dc := range f.Datacenters() {
		cp, _ := st.Checkpoint(dc)
		l := Lag{Datacenter: dc, Checkpoint: cp.Index, Conflicts: len(st.Conflicts(dc))}
		f.mu.Lock()
		if s, ok := f.peers[dc]; ok {
			l.Reachable, l.Lag, l.Errors, l.Copied = s.reachable, s.lag, s.errors, s.copied
			l.Repaired = s.ae.RepairedTotal
		}
		f.mu.Unlock()
		out = append(out, l)
	}
	return out
}
