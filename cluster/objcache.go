package cluster

import (
	"container/list"
	"sync"
)

// objectCache keeps the content of recently read small objects in memory,
// least recently used out first. Objects never change under their ID, so
// an entry needs no invalidation: a deleted or rewritten object is simply
// not asked for again and ages out. Entries hold bytes that passed the
// shard checksums on the read that filled them and hash to the object's
// digest (a copy rebuilt in place keeps its ID).
type objectCache struct {
	mu   sync.Mutex
	max  int64
	size int64
	lru  *list.List               // of *cacheEntry, most recent first
	byID map[string]*list.Element // object ID -> element
}

type cacheEntry struct {
	id string
	b  []byte
}

// newObjectCache returns a cache of at most max bytes; max <= 0 caches
// nothing.
func newObjectCache(max int64) *objectCache {
	return &objectCache{max: max, lru: list.New(), byID: map[string]*list.Element{}}
}

// get returns the content of object id. The slice is shared: callers must
// not modify it.
func (c *objectCache) get(id string) ([]byte, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).b, true
}

// add stores b, which the cache owns from now on, as object id's content.
func (c *objectCache) add(id string, b []byte) {
	if c.max <= 0 || int64(len(b)) > c.max/16 {
		return // one object may take at most a sixteenth of the cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; ok {
		return
	}
	c.byID[id] = c.lru.PushFront(&cacheEntry{id: id, b: b})
	c.size += int64(len(b))
	for c.size > c.max {
		old := c.lru.Back()
		ce := old.Value.(*cacheEntry)
		c.lru.Remove(old)
		delete(c.byID, ce.id)
		c.size -= int64(len(ce.b))
	}
}

// bytes returns the cache's current size and entry count.
func (c *objectCache) bytes() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.byID)
}
