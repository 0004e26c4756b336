package objects

import (
	"fmt"
	"testing"
)

func TestObjectCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newObjectCache(160)
	for i := range 16 {
		c.add(fmt.Sprint(i), make([]byte, 10))
	}
	if _, ok := c.get("0"); !ok { // 0 is now the most recent
		t.Fatal("entry 0 missing before the cache was full")
	}
	c.add("new", make([]byte, 10))
	if _, ok := c.get("1"); ok {
		t.Fatal("least recently used entry 1 survived an insert into a full cache")
	}
	for _, id := range []string{"0", "2", "15", "new"} {
		if _, ok := c.get(id); !ok {
			t.Fatalf("entry %s evicted", id)
		}
	}
	if size, n := c.bytes(); size != 160 || n != 16 {
		t.Fatalf("cache holds %d bytes in %d entries, want 160 in 16", size, n)
	}
	c.add("huge", make([]byte, 11))
	if _, ok := c.get("huge"); ok {
		t.Fatal("an entry over a sixteenth of the cache was kept")
	}
	off := newObjectCache(0)
	off.add("x", []byte("x"))
	if _, ok := off.get("x"); ok {
		t.Fatal("a disabled cache returned an entry")
	}
}
