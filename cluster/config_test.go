package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A GC delay shorter than a commit may take is refused: GC would take the
// shards of a write that is still committing.
func TestValidateRefusesAGCDelayUnderTwiceTheApplyTimeout(t *testing.T) {
	_, tr := raft.NewInmemTransport("")
	for _, tc := range []struct {
		gc, apply time.Duration
		ok        bool
	}{
		{0, 0, true}, // 15 min against 10 s
		{20 * time.Second, 10 * time.Second, true}, // the test harness's
		{time.Second, 0, false},                    // the harness's before
		{19 * time.Second, 10 * time.Second, false},
	} {
		cfg := Config{ID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:1", GossipBind: "127.0.0.1:2",
			RaftTransport: tr, Peers: struct{ PeerClient }{}, ClusterKey: "k",
			GCDelay: tc.gc, ApplyTimeout: tc.apply}
		err := cfg.Validate()
		if tc.ok != (err == nil) {
			t.Fatalf("GC delay %s, apply timeout %s: err %v", tc.gc, tc.apply, err)
		}
		if err != nil && !strings.Contains(err.Error(), "GC delay") {
			t.Fatalf("error does not say what is wrong: %v", err)
		}
	}
}
