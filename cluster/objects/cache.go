package objects

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// objectCache keeps the content of recently read small objects in memory,
// least recently used out first, bounded in bytes (golang-lru counts
// entries; the byte bound evicts from its oldest end). Objects never
// change under their ID, so an entry needs no invalidation: a deleted or
// rewritten object is simply not asked for again and ages out. Entries
// hold bytes that passed the shard checksums on the read that filled them
// and hash to the object's digest (a copy rebuilt in place keeps its ID).
type objectCache struct {
	mu   sync.Mutex
	max  int64
	size int64
	lru  *simplelru.LRU[string, []byte] // object ID -> content
}

// newObjectCache returns a cache of at most max bytes; max <= 0 caches
// nothing.
func newObjectCache(max int64) *objectCache {
	c := &objectCache{max: max}
	// Only an invalid size makes NewLRU fail.
	c.lru, _ = simplelru.NewLRU[string, []byte](math.MaxInt, func(_ string, b []byte) {
		c.size -= int64(len(b))
	})
	return c
}

// get returns the content of object id. The slice is shared: callers must
// not modify it.
func (c *objectCache) get(id string) ([]byte, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(id)
}

// add stores b, which the cache owns from now on, as object id's content.
func (c *objectCache) add(id string, b []byte) {
	if c.max <= 0 || int64(len(b)) > c.max/16 {
		return // one object may take at most a sixteenth of the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(id) {
		return
	}
	c.lru.Add(id, b)
	c.size += int64(len(b))
	for c.size > c.max {
		c.lru.RemoveOldest()
	}
}

// bytes returns the cache's current size and entry count.
func (c *objectCache) bytes() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, c.lru.Len()
}
