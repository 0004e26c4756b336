package cluster

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster/metastore"
)

// diskGuard watches the free space of the data dir. A node whose disk is
// (nearly) full cannot append to its raft log or store shards, and every
// request that needs either would otherwise wait for a timeout: the guard
// lets such requests fail at once with ErrNoSpace (507), tells peers
// through gossip to place no shards here, and makes a leader hand over.
type diskGuard struct {
	dir     string
	minFree int64
	free    func(dir string) (int64, error)

	mu      sync.Mutex
	checked time.Time
	avail   int64
	full    bool
}

// diskRecheck is how long a free-space figure is trusted: a statfs per
// request would cost little, but pushes and waits ask many times each.
const diskRecheck = 100 * time.Millisecond

func statfsFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// state returns the free bytes and whether they are below the reserve,
// measuring again when the last figure is stale.
func (g *diskGuard) state() (int64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= diskRecheck {
		g.measureLocked()
	}
	return g.avail, g.full
}

func (g *diskGuard) measureLocked() {
	g.checked = time.Now()
	avail, err := g.free(g.dir)
	if err != nil {
		// An unreadable figure refuses nothing: the writes themselves
		// still report ENOSPC.
		g.avail, g.full = -1, false
		return
	}
	g.avail, g.full = avail, g.minFree > 0 && avail < g.minFree
}

// sawNoSpace makes the next check measure again: a write just failed.
func (g *diskGuard) sawNoSpace() {
	g.mu.Lock()
	g.checked = time.Time{}
	g.mu.Unlock()
}

// checkSpace returns ErrNoSpace when this node's disk is below the
// reserve, with the figures an operator needs.
func (n *Node) checkSpace() error {
	avail, full := n.disk.state()
	if !full {
		return nil
	}
	return fmt.Errorf("%w: node %s has %d MiB free in its data dir, below the %d MiB reserve (--min-free)",
		chunk.ErrNoSpace, n.cfg.ID, avail>>20, n.cfg.MinFree>>20)
}

// DiskFull reports whether this node's data dir is below its free-space
// reserve.
func (n *Node) DiskFull() bool {
	_, full := n.disk.state()
	return full
}

// watchDisk runs on every tick: on a change between full and not full it
// updates the gossip metadata, and a full leader hands leadership over,
// since it could not append the log entries it is asked to commit.
func (n *Node) watchDisk() {
	full := n.DiskFull()
	if full != n.diskFull.Swap(full) {
		if full {
			n.log.Warn("data dir below its free-space reserve: refusing pushes and shards", "reserve_mib", n.cfg.MinFree>>20)
			n.objects.DropPullCache()
		} else {
			n.log.Info("data dir has free space again")
		}
		if err := n.pool.UpdateMeta(time.Second); err != nil {
			n.log.Debug("broadcast disk state", "error", err)
		}
	}
	if full && n.IsLeader() {
		n.store.HandOver()
	}
}

// diskSpace shows the metadata store this node's free-space guard.
type diskSpace struct{ n *Node }

func (d diskSpace) Check() error { return d.n.checkSpace() }
func (d diskSpace) SawNoSpace()  { d.n.disk.sawNoSpace() }

// isNoSpace recognizes a full disk in errors from libraries that do not
// wrap the errno.
func isNoSpace(err error) bool { return metastore.IsNoSpace(err) }
