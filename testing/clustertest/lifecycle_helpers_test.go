package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/pier-registry/pier/cluster"
)

// waitFullRedundancy waits until every running node reports every object
// fully redundant.
func waitFullRedundancy(t *testing.T, c *Cluster) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		for _, i := range c.Running() {
			st := c.Nodes[i].Srv.Node.Status()
			if st.Redundancy[cluster.Full] != st.Objects {
				return fmt.Errorf("%s: %d of %d objects fully redundant: %v", c.Nodes[i].ID, st.Redundancy[cluster.Full], st.Objects, st.Redundancy)
			}
		}
		return nil
	})
}

// settledShardBytes waits until the shard bytes on disk stop changing
// (repairs done, garbage collected) and returns them.
func settledShardBytes(t *testing.T, c *Cluster) int64 {
	t.Helper()
	last := shardBytes(c)
	stable := 0
	Eventually(t, Wait(), func() error {
		now := shardBytes(c)
		if now != last {
			last, stable = now, 0
			return fmt.Errorf("shard bytes still changing")
		}
		stable++
		if time.Duration(stable)*20*time.Millisecond < 3*time.Second {
			return fmt.Errorf("shard bytes stable for %d polls", stable)
		}
		return nil
	})
	return last
}

// waitScrubFound waits until node i's scrubber has reported a bad shard.
func waitScrubFound(t *testing.T, c *Cluster, i int) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		if c.Nodes[i].Srv.Node.Stats().ScrubCorrupt == 0 {
			return fmt.Errorf("scrub on %s has not found the corruption", c.Nodes[i].ID)
		}
		return nil
	})
}

// waitCorruptionFound waits until some node's scrubber has found a corrupt
// shard, in a test where no client reads. Two scrubbers read each shard:
// its holder's, block by block (ScrubCorrupt), and that of the node which
// checks the object's whole content, through the read path, which counts
// the bad block (CorruptBlocks) and reports the shard missing. Whichever
// comes first reports it, and the holder's scrubber skips a shard marked
// missing (repair owns it), so waiting on the holder's count alone failed
// whenever the content check came first (about 1 run in 7 under load).
func waitCorruptionFound(t *testing.T, c *Cluster) {
	t.Helper()
	Eventually(t, Wait(), func() error {
		for _, i := range c.Running() {
			if st := c.Nodes[i].Srv.Node.Stats(); st.ScrubCorrupt > 0 || st.CorruptBlocks > 0 {
				return nil
			}
		}
		return fmt.Errorf("no scrubber has found the corruption")
	})
}
