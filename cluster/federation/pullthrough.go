package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/pier-registry/pier/cluster/errs"
	"github.com/pier-registry/pier/cluster/membership"
	"github.com/pier-registry/pier/fsm"
)

// Pull-through: a pull on any node of a name its cluster does not hold yet
// asks the other datacenters, nearest first, and streams the bytes to the
// client while the node stores them through the replicator's write path
// (erasure-coded here, SHA-256 checked, origin and created time kept). A
// deployment target that reaches only its own datacenter gets an artifact
// pushed elsewhere before replication has copied it, and the copy it
// caused is the one the replicator later finds bound to the same bytes.
//
// The node's side decides when to ask (a name never bound here: a deleted
// name is not pulled back); this file finds the artifact and runs the one
// fetch per name a node makes, however many clients want it.

// Looker is the part of a Remote that pull-through needs. A Remote
// without it leaves pull-through off.
type Looker interface {
	// Lookup returns what the node at addr binds name to, as a feed
	// record (its live artifact, origin and tag history), without asking
	// any other datacenter; fsm.ErrNotFound when its cluster has no live
	// artifact of that name.
	Lookup(ctx context.Context, addr, name string) (fsm.FeedRecord, error)
}

// Remote lookups on the request path have their own deadline: a
// datacenter that does not answer must not hold a pull for long.
const lookupTimeout = 5 * time.Second

// A node whose lookup failed (not a 404) is skipped for downFor, so that
// while a datacenter is cut off, before gossip declares its nodes dead,
// a pull of a name held nowhere does not wait on them every time; one
// node's attempt gets at most lookupAttempt.
const (
	downFor       = 10 * time.Second
	lookupAttempt = 2 * time.Second
)

// lookupTTL is how long a found artifact is remembered between the
// metadata answer (HEAD, or the start of a GET) and the fetch.
const lookupTTL = 30 * time.Second

// pullThrough is a Federation's pull-through state; its zero value is
// ready.
type pullThrough struct {
	mu sync.Mutex
	// rtt is the measured latency of each remote node's lookups (a moving
	// average), for "nearest first"; memberlist's WAN pool has no network
	// coordinates.
	rtt map[string]time.Duration
	// down holds nodes whose last lookup failed, until when to skip them.
	down map[string]time.Time
	// found remembers recent lookups by name.
	found map[string]found
	// fills are the fetches in progress by name.
	fills map[string]*fill
	// ctx bounds the fetches: they outlive the requests that start them
	// (they store for everyone) but not the federation (stop).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// begin registers a fetch; false once the federation has stopped.
func (p *pullThrough) begin() (context.Context, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		p.ctx, p.cancel = context.WithCancel(context.Background())
	}
	if p.ctx.Err() != nil {
		return nil, false
	}
	p.wg.Add(1)
	return p.ctx, true
}

// stop cancels the fetches in progress and waits for them to end.
func (p *pullThrough) stop() {
	p.mu.Lock()
	if p.ctx == nil {
		p.ctx, p.cancel = context.WithCancel(context.Background())
	}
	p.cancel()
	p.mu.Unlock()
	p.wg.Wait()
}

type found struct {
	rec  fsm.FeedRecord
	addr string
	dc   string
	at   time.Time
}

// fill is one fetch of a name into the local store.
type fill struct {
	done chan struct{}
	err  error // set before done closes
}

// ErrStopped marks a pull-through asked of a stopping node.
var ErrStopped = errors.New("federation stopped")

// ErrNotHere marks a pull-through that found the artifact in no other
// datacenter.
var ErrNotHere = errors.New("no other datacenter holds it")

// PullStat finds name in the other datacenters, nearest node first, and
// returns its artifact and origin. It is fsm.ErrNotFound (wrapping
// ErrNotHere) when no reachable datacenter holds it.
func (f *Federation) PullStat(ctx context.Context, name string) (fsm.Artifact, string, error) {
	fd, err := f.lookup(ctx, name)
	if err != nil {
		return fsm.Artifact{}, "", err
	}
	return *fd.rec.Live, fd.origin(), nil
}

func (fd found) origin() string {
	if fd.rec.Origin != "" {
		return fd.rec.Origin
	}
	return fd.dc
}

func (f *Federation) lookup(ctx context.Context, name string) (found, error) {
	looker, ok := f.cfg.Remote.(Looker)
	if !ok {
		return found{}, fmt.Errorf("%w: %s: pull-through off (the peer client cannot look names up)", fsm.ErrNotFound, name)
	}
	now := time.Now()
	p := &f.pt
	p.mu.Lock()
	if fd, ok := p.found[name]; ok && now.Sub(fd.at) < lookupTTL {
		p.mu.Unlock()
		return fd, nil
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var fails []error
	answered := map[string]bool{} // datacenters that said "not here"
candidates:
	for _, c := range f.nearest() {
		if answered[c.dc] {
			continue
		}
		start := time.Now()
		actx, acancel := context.WithTimeout(ctx, lookupAttempt)
		rec, err := looker.Lookup(actx, c.addr, name)
		acancel()
		if err == nil || errors.Is(err, fsm.ErrNotFound) {
			f.noteRTT(c.addr, time.Since(start))
		} else if ctx.Err() == nil {
			f.noteDown(c.addr)
		}
		switch {
		case errors.Is(err, fsm.ErrNotFound):
			// The node answered after a read barrier: its datacenter
			// does not hold the name.
			answered[c.dc] = true
			continue
		case err != nil:
			fails = append(fails, err)
			if ctx.Err() != nil {
				break candidates
			}
			continue
		}
		if rec.Live == nil || rec.Deleted || rec.Name != name || fsm.ValidateDigest(rec.Digest) != nil || rec.Live.Digest != rec.Digest {
			fails = append(fails, fmt.Errorf("%s answered a record that is not a live %s", c.addr, name))
			continue
		}
		fd := found{rec: rec, addr: c.addr, dc: c.dc, at: now}
		p.mu.Lock()
		if p.found == nil {
			p.found = map[string]found{}
		}
		for k, v := range p.found {
			if now.Sub(v.at) >= lookupTTL {
				delete(p.found, k)
			}
		}
		p.found[name] = fd
		p.mu.Unlock()
		return fd, nil
	}
	if len(fails) > 0 {
		f.log.Debug("pull-through lookup failed on some nodes", "name", name, "error", errors.Join(fails...))
	}
	return found{}, fmt.Errorf("%w: %s: %w", fsm.ErrNotFound, name, ErrNotHere)
}

type candidate struct {
	addr, dc string
	rtt      time.Duration // 0: not measured yet
}

// nearest lists the alive nodes of the other datacenters, those with the
// lowest measured lookup latency first, then the unmeasured in random
// order (so that they get measured, and load spreads).
func (f *Federation) nearest() []candidate {
	var out []candidate
	now := time.Now()
	f.pt.mu.Lock()
	for _, m := range f.pool.List() {
		dc := m.Meta.Datacenter
		if dc == "" || dc == f.cfg.Datacenter || m.Meta.HTTP == "" || m.State != membership.StateAlive {
			continue
		}
		if now.Before(f.pt.down[m.Meta.HTTP]) {
			continue
		}
		out = append(out, candidate{addr: m.Meta.HTTP, dc: dc, rtt: f.pt.rtt[m.Meta.HTTP]})
	}
	f.pt.mu.Unlock()
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	slices.SortStableFunc(out, func(a, b candidate) int {
		switch {
		case a.rtt == 0 && b.rtt == 0:
			return 0
		case a.rtt == 0:
			return 1
		case b.rtt == 0:
			return -1
		}
		return int(a.rtt - b.rtt)
	})
	return out
}

func (f *Federation) noteDown(addr string) {
	f.pt.mu.Lock()
	defer f.pt.mu.Unlock()
	if f.pt.down == nil {
		f.pt.down = map[string]time.Time{}
	}
	f.pt.down[addr] = time.Now().Add(downFor)
}

func (f *Federation) noteRTT(addr string, d time.Duration) {
	if d <= 0 {
		d = time.Microsecond
	}
	f.pt.mu.Lock()
	defer f.pt.mu.Unlock()
	if f.pt.rtt == nil {
		f.pt.rtt = map[string]time.Duration{}
	}
	delete(f.pt.down, addr)
	if old, ok := f.pt.rtt[addr]; ok {
		d = (3*old + d) / 4
	}
	f.pt.rtt[addr] = d
}

// PullOpen streams n bytes from off of name's content, which the other
// datacenter binds to digest, while storing the whole of it here: the
// first caller for a name starts the one fetch this node makes of it and
// reads along with it; a caller that comes while that fetch runs gets
// waitLocal instead (wait, then read the local copy: the bytes it missed
// are not kept in memory).
//
// The stream is verified as it goes: when the remote's bytes do not hash
// to digest, the reader fails before giving out the last of them, so a
// client that was sent a length sees a transfer cut short, never a clean
// end; nothing is bound. The fetch goes on when its first reader goes
// away, so the copy is made anyway.
func (f *Federation) PullOpen(ctx context.Context, name, digest string, off, n int64) (rc io.ReadCloser, waitLocal func(context.Context) error, err error) {
	fd, err := f.lookup(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if fd.rec.Digest != digest {
		return nil, nil, fmt.Errorf("%w: %s is now %s in %s, not %s", fsm.ErrConflict, name, fd.rec.Digest, fd.dc, digest)
	}
	p := &f.pt
	fctx, ok := p.begin()
	if !ok {
		return nil, nil, fmt.Errorf("pull-through %s: %w", name, ErrStopped)
	}
	p.mu.Lock()
	if fl, ok := p.fills[name]; ok {
		p.wg.Done()
		p.mu.Unlock()
		return nil, fl.wait, nil
	}
	if p.fills == nil {
		p.fills = map[string]*fill{}
	}
	fl := &fill{done: make(chan struct{})}
	p.fills[name] = fl
	p.mu.Unlock()

	body, err := f.cfg.Remote.Fetch(fctx, fd.addr, name)
	if err != nil {
		f.endFill(name, fl, err)
		p.wg.Done()
		return nil, nil, fmt.Errorf("pull-through %s from %s: %w", name, fd.dc, err)
	}
	pr, pw := io.Pipe()
	go func() {
		defer p.wg.Done()
		f.runFill(fctx, name, fd, body, pw, fl)
	}()
	return &window{r: pr, skip: off, left: n}, nil, nil
}

func (fl *fill) wait(ctx context.Context) error {
	select {
	case <-fl.done:
		return fl.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Federation) endFill(name string, fl *fill, err error) {
	f.pt.mu.Lock()
	delete(f.pt.fills, name)
	if err != nil {
		// The next pull looks again: the remote may have been the fault.
		delete(f.pt.found, name)
	}
	f.pt.mu.Unlock()
	fl.err = err
	close(fl.done)
}

// runFill copies body into the local write path and into client, hashing
// as it goes, and holds back each read's bytes from client until they are
// hashed: the read that completes the size is given out only if the whole
// hashes to the digest.
func (f *Federation) runFill(ctx context.Context, name string, fd found, body io.ReadCloser, client *io.PipeWriter, fl *fill) {
	defer body.Close()
	rec, size := fd.rec, fd.rec.Size
	store, storeW := io.Pipe()
	// A stopping node unblocks a write to a client that reads no more.
	unhook := context.AfterFunc(ctx, func() {
		client.CloseWithError(ctx.Err())
		storeW.CloseWithError(ctx.Err())
	})
	defer unhook()
	stored := make(chan error, 1)
	go func() {
		_, err := f.cfg.Local.Replicate(ctx, rec, fd.origin(), store)
		store.CloseWithError(err) // unblocks a writer when the store quit early
		stored <- err
	}()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var total int64
	storeOK, clientOK := true, true
	var ferr error
	src := io.LimitReader(body, size)
	if size == 0 && "sha256:"+hex.EncodeToString(h.Sum(nil)) != rec.Digest {
		ferr = fmt.Errorf("%w: %s: empty content, its record says %s", errs.ErrDigestMismatch, name, rec.Digest)
	}
	for ferr == nil && total < size {
		k, err := src.Read(buf)
		if k > 0 {
			total += int64(k)
			h.Write(buf[:k])
			if storeOK {
				if _, werr := storeW.Write(buf[:k]); werr != nil {
					storeOK = false
				}
			}
			if total == size {
				if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != rec.Digest {
					ferr = fmt.Errorf("%w: %s from %s hashes to %s, its record says %s", errs.ErrDigestMismatch, name, fd.dc, got, rec.Digest)
					break
				}
			}
			if clientOK {
				if _, werr := client.Write(buf[:k]); werr != nil {
					clientOK = false // gone: the store goes on
				}
			}
		}
		if err == io.EOF && total < size {
			ferr = fmt.Errorf("%w: %s from %s ended after %d of %d bytes", errs.ErrTruncated, name, fd.dc, total, size)
		} else if err != nil && err != io.EOF {
			ferr = fmt.Errorf("pull-through %s from %s: %w", name, fd.dc, err)
		}
	}
	if ferr != nil {
		client.CloseWithError(ferr)
		storeW.CloseWithError(ferr) // the write path binds nothing
		<-stored
		f.log.Warn("pull-through failed; nothing bound", "name", name, "datacenter", fd.dc, "error", ferr)
		f.endFill(name, fl, ferr)
		return
	}
	client.Close()
	storeW.Close()
	err := <-stored
	if err != nil {
		err = fmt.Errorf("pull-through %s: store: %w", name, err)
		f.log.Warn("pull-through served but not stored", "name", name, "datacenter", fd.dc, "error", err)
	} else {
		f.log.Debug("pull-through stored", "name", name, "datacenter", fd.dc, "bytes", size)
	}
	f.endFill(name, fl, err)
}

// window gives out n bytes of r after skipping skip (a range of a pull
// that streams from the start).
type window struct {
	r          *io.PipeReader
	skip, left int64
}

func (w *window) Read(p []byte) (int, error) {
	if w.skip > 0 {
		if _, err := io.CopyN(io.Discard, w.r, w.skip); err != nil {
			return 0, err
		}
		w.skip = 0
	}
	if w.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > w.left {
		p = p[:w.left]
	}
	k, err := w.r.Read(p)
	w.left -= int64(k)
	if err == io.EOF && w.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// Close leaves the fetch to go on without this reader.
func (w *window) Close() error {
	w.r.CloseWithError(errors.New("reader gone"))
	return nil
}
