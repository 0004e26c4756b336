package cluster

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/pier-registry/pier/cluster/objects"
	"github.com/pier-registry/pier/cluster/pullcache"
)

// DefaultPullCacheWarm is `pier serve`'s PullCacheWarm: one whole fill's
// ring of newest blocks. On the 2-core VM of BENCHMARKS.md the node's first
// pull of 64 MiB, which fills the cache, ran at 252-257 MB/s without it
// and at 750-1,161 MB/s with it, where a pull that bypassed the cache ran
// at 879-1,097.
const DefaultPullCacheWarm = 64 << 20

// openPullCache opens the node's cache of whole objects it served, sized
// by Config.PullCacheSize; nil when it is off.
func (n *Node) openPullCache() (*pullcache.Cache, error) {
	size := n.cfg.PullCacheSize
	if size < 0 {
		return nil, nil
	}
	if size == 0 {
		free, err := n.cfg.FreeSpace(n.cfg.DataDir)
		if err != nil || free <= 0 {
			n.log.Warn("pull cache off: free space unknown", "error", err)
			return nil, nil
		}
		size = free / 10
	}
	c, err := pullcache.Open(pullcache.Config{Dir: filepath.Join(n.cfg.DataDir, "pullcache"), Max: size,
		PinMemory: n.cfg.PullCachePinMemory, WarmMemory: n.cfg.PullCacheWarm, Logger: n.log.Named("pullcache")})
	if err != nil {
		return nil, fmt.Errorf("open pull cache: %w", err)
	}
	n.log.Debug("pull cache", "max_bytes", size)
	return c, nil
}

// BypassPullCache marks ctx's reads as reading the shards, neither served
// from nor filling the pull cache (a client's Cache-Control: no-cache).
func BypassPullCache(ctx context.Context) context.Context { return objects.BypassPullCache(ctx) }
