package objects

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"github.com/pier-registry/pier/cluster/pullcache"
	"github.com/pier-registry/pier/fsm"
)

// openCached serves a read of a big object from the node's pull cache: from
// its entry, or by following the fill another pull started. A whole-object
// read that finds neither starts the fill, decoded once on a goroutine of
// its own, and follows it. Small objects have the memory cache instead.
func (o *Store) openCached(ctx context.Context, a fsm.Artifact, obj fsm.Object, off, length int64) (io.ReadCloser, bool) {
	pc := o.cfg.PullCache
	if pc == nil || obj.Size <= int64(o.cfg.SmallObjectSize) || ctx.Value(bypassKey{}) != nil {
		return nil, false
	}
	if rc, ok := pc.Open(ctx, obj.ID, off, length); ok {
		return &fallback{o: o, ctx: ctx, a: a, off: off, length: length, rc: rc}, true
	}
	if off != 0 || length != obj.Size || o.checkSpace() != nil {
		return nil, false
	}
	want, err := hex.DecodeString(strings.TrimPrefix(obj.Digest, "sha256:"))
	if err != nil || len(want) == 0 {
		return nil, false
	}
	// Shards known lost: let the normal path refuse with its clean error.
	if have := len(obj.Placement) - len(obj.Missing); have < obj.K {
		return nil, false
	}
	fill, ok := pc.Begin(obj.ID, obj.Size, want)
	if !ok {
		return nil, false
	}
	l := layoutOf(obj)
	started := o.spawn(func(ctx context.Context) {
		// The fill outlives the pull that started it: later pulls follow
		// it, and a wave's first client may be its slowest. Finish checks
		// the object's SHA-256 on the file.
		fill.Finish(o.decodeTo(countPeerReads(ctx), obj, l, 0, obj.Size, fill))
	})
	if !started {
		fill.Finish(ErrShutdown)
		return nil, false
	}
	rc, ok := pc.Open(ctx, obj.ID, off, length)
	if !ok {
		return nil, false
	}
	return &fallback{o: o, ctx: ctx, a: a, off: off, length: length, rc: rc}, true
}

type bypassKey struct{}

// BypassPullCache marks ctx's reads as reading shards, neither served from
// nor filling the pull cache: a client's Cache-Control: no-cache, and the
// benchmark's cold pulls.
func BypassPullCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, bypassKey{}, true)
}

// fallback reads through the pull cache and, when the fill it follows
// fails or the entry's file turns out corrupt, goes on with a decode of its
// own from where it was: a cache that could not be filled (a full disk, a
// read the fill gave up) or rotted on disk must not fail a pull that the
// shards can still serve.
type fallback struct {
	o           *Store
	ctx         context.Context
	a           fsm.Artifact
	off, length int64
	pos         int64
	rc          io.ReadCloser
	switched    bool
}

// reopen replaces the cache reader after err, when err is a failed fill or
// a corrupt entry.
func (f *fallback) reopen(err error) bool {
	if f.switched || f.ctx.Err() != nil || !(errors.Is(err, pullcache.ErrFillFailed) || errors.Is(err, pullcache.ErrCorrupt)) {
		return false
	}
	f.switched = true
	f.rc.Close()
	rc, oerr := f.o.openDirect(f.ctx, f.a, f.off+f.pos, f.length-f.pos)
	if oerr != nil {
		f.rc = io.NopCloser(strings.NewReader(""))
		return false
	}
	f.o.log.Debug("pull cache fill failed, decoding directly", "digest", f.a.Digest, "offset", f.off+f.pos, "error", err)
	f.rc = rc
	return true
}

func (f *fallback) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	f.pos += int64(n)
	if err != nil && err != io.EOF && f.reopen(err) {
		if n > 0 {
			return n, nil
		}
		return f.Read(p)
	}
	return n, err
}

func (f *fallback) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		var n int64
		var err error
		if wt, ok := f.rc.(io.WriterTo); ok {
			n, err = wt.WriteTo(w)
		} else {
			n, err = io.Copy(w, struct{ io.Reader }{f.rc})
		}
		f.pos += n
		total += n
		if err == nil || !f.reopen(err) {
			return total, err
		}
	}
}

func (f *fallback) Close() error { return f.rc.Close() }

// dropCached removes object id's copy from the pull cache: the object is
// being deleted.
func (o *Store) dropCached(id string) {
	if o.cfg.PullCache != nil {
		o.cfg.PullCache.Remove(id)
	}
}

// DropPullCache empties the pull cache: the data dir fell below its
// free-space reserve, and shards and the raft log come first.
func (o *Store) DropPullCache() {
	if o.cfg.PullCache != nil {
		o.cfg.PullCache.Clear()
	}
}
