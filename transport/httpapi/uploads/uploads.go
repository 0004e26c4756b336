// Package uploads keeps resumable uploads on a node's disk: the bytes a
// client has sent so far for one artifact, to be completed as a push later.
//
// An upload is two files in the store's directory: <id>.part, the bytes,
// and <id>.json, its record (name, the size that is durable, the SHA-256
// state of those bytes, times), replaced atomically. The record is the
// truth: bytes in the part file beyond its size were never made durable
// and are cut off when the store opens, so after a crash an upload is
// exactly what it was at its last checkpoint, and its hash state matches
// those bytes (completing needs no second read to learn the digest).
//
// The store knows nothing of HTTP or of the cluster: the API maps its
// sentinels to statuses and completes an upload through the node's push.
package uploads

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	// ErrNotFound: no upload with that id here (never was, completed,
	// cancelled or expired), or the id is not one this store could have
	// made.
	ErrNotFound = errors.New("no such upload")
	// ErrOffset: an append that does not start where the stored bytes end.
	ErrOffset = errors.New("wrong upload offset")
	// ErrBusy: another request is appending to or completing the upload.
	ErrBusy = errors.New("upload busy")
	// ErrTooMany: the store holds Config.MaxOpen uploads already.
	ErrTooMany = errors.New("too many open uploads")
	// ErrTooLarge: the upload would grow past Config.MaxSize.
	ErrTooLarge = errors.New("upload too large")
	// ErrBadRange: an append whose body is longer or shorter than it
	// declared.
	ErrBadRange = errors.New("body does not match its declared range")
	// ErrDigest: the stored bytes do not have the digest given to Complete.
	ErrDigest = errors.New("digest mismatch")
	// ErrNoSpace: the disk is full (or below the node's reserve).
	ErrNoSpace = errors.New("no space left for uploads")
	// ErrClosed: the store is closing.
	ErrClosed = errors.New("upload store closed")
)

// Defaults of Config.
const (
	DefaultTTL     = 24 * time.Hour
	DefaultMaxOpen = 1000
	// checkpointEvery is how many appended bytes may be lost to a crash:
	// an append makes its bytes durable (fsync, then the record) this
	// often, and once more when it ends.
	checkpointEvery = 32 << 20
	copyBuffer      = 1 << 20
)

// Config sets up a Store. A zero field takes its default.
type Config struct {
	// Dir holds the uploads; it is created if missing.
	Dir string
	// Node is the id of the node the store belongs to; it prefixes upload
	// ids, so another node can say where an upload lives.
	Node string
	// TTL is how long an upload may go without an append before it
	// expires and its bytes are removed (default 24h).
	TTL time.Duration
	// MaxOpen bounds the uploads held at once (default 1000).
	MaxOpen int
	// MaxSize bounds one upload's bytes (0: no bound).
	MaxSize int64
	// Space, when set, is asked before an append: an error (the node's
	// disk is below its reserve) refuses it before a byte is read.
	Space func() error
	// Now is the clock of expiry (default time.Now).
	Now    func() time.Time
	Logger hclog.Logger
}

// Info describes an upload.
type Info struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Expires is Updated plus the store's TTL.
	Expires time.Time `json:"expires"`
}

// record is an upload's <id>.json.
type record struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	SHA256  []byte    `json:"sha256_state"` // the hash state of the first Size bytes
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

type upload struct {
	rec  record
	busy bool
}

// Store holds the uploads of one node. Its methods are safe for
// concurrent use; one upload takes one append or completion at a time.
type Store struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	ups     map[string]*upload
	closed  bool
	working sync.WaitGroup // appends and completions in flight
}

// Open opens (or creates) the store in cfg.Dir and reloads the uploads
// found there, each cut back to its last durable size. Files that belong
// to no valid record are removed.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("uploads: no directory")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = DefaultMaxOpen
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if !nodePart.MatchString(cfg.Node) {
		// Ids then carry no node; the store still works.
		cfg.Node = ""
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("uploads: create %s: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, ups: map[string]*upload{}}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("uploads: read %s: %w", s.cfg.Dir, err)
	}
	keep := map[string]bool{}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		rec, err := s.reopen(id)
		if err != nil {
			s.log.Warn("dropping an upload that cannot be reopened", "id", id, "error", err)
			continue
		}
		s.ups[id] = &upload{rec: rec}
		keep[id+".json"], keep[id+".part"] = true, true
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			// Temp records of a crashed write, parts of a crashed create,
			// the files of a dropped upload.
			if err := os.RemoveAll(filepath.Join(s.cfg.Dir, e.Name())); err != nil {
				s.log.Warn("cannot remove a stray file", "file", e.Name(), "error", err)
			}
		}
	}
	if len(s.ups) > 0 {
		s.log.Info("reopened uploads", "count", len(s.ups))
	}
	return nil
}

// reopen reads id's record and cuts its part file back to the record's
// size.
func (s *Store) reopen(id string) (record, error) {
	var rec record
	b, err := os.ReadFile(s.path(id, ".json"))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode record: %w", err)
	}
	if rec.ID != id || rec.Size < 0 || rec.Name == "" {
		return rec, fmt.Errorf("record of %q names upload %q, size %d", id, rec.ID, rec.Size)
	}
	if _, err := restoreHash(rec.SHA256); err != nil {
		return rec, err
	}
	f, err := os.OpenFile(s.path(id, ".part"), os.O_RDWR, 0)
	if err != nil {
		return rec, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return rec, err
	}
	if st.Size() < rec.Size {
		return rec, fmt.Errorf("part file holds %d bytes, its record %d", st.Size(), rec.Size)
	}
	if st.Size() > rec.Size {
		if err := f.Truncate(rec.Size); err != nil {
			return rec, fmt.Errorf("cut back to %d bytes: %w", rec.Size, err)
		}
		if err := f.Sync(); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// Ids are <node>-<32 hex digits> (or the hex digits alone): nothing in them
// can name another file.
var (
	idPattern = regexp.MustCompile(`^(?:([A-Za-z0-9_]{1,64})-)?[0-9a-f]{32}$`)
	nodePart  = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
)

func validID(id string) bool { return idPattern.MatchString(id) }

// NodeOf returns the node an upload id names ("" for none or a bad id).
func NodeOf(id string) string {
	m := idPattern.FindStringSubmatch(id)
	if m == nil {
		return ""
	}
	return m[1]
}

// Node is the id of the node the store belongs to, as its upload ids carry
// it ("" when its id cannot be carried).
func (s *Store) Node() string { return s.cfg.Node }

func (s *Store) path(id, ext string) string { return filepath.Join(s.cfg.Dir, id+ext) }

func (s *Store) info(rec record) Info {
	return Info{ID: rec.ID, Name: rec.Name, Size: rec.Size, Created: rec.Created, Updated: rec.Updated,
		Expires: rec.Updated.Add(s.cfg.TTL)}
}

// Create starts an upload for name.
func (s *Store) Create(name string) (Info, error) {
	if name == "" {
		return Info{}, errors.New("uploads: empty name")
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Info{}, fmt.Errorf("uploads: random id: %w", err)
	}
	id := hex.EncodeToString(rnd[:])
	if s.cfg.Node != "" {
		id = s.cfg.Node + "-" + id
	}
	if err := s.checkSpace(); err != nil {
		return Info{}, err
	}
	st, err := marshalHash(sha256.New())
	if err != nil {
		return Info{}, err
	}
	now := s.cfg.Now()
	rec := record{ID: id, Name: name, SHA256: st, Created: now, Updated: now}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return Info{}, ErrClosed
	case len(s.ups) >= s.cfg.MaxOpen:
		s.mu.Unlock()
		return Info{}, fmt.Errorf("%w: this node holds %d; complete or cancel some, or wait for them to expire", ErrTooMany, s.cfg.MaxOpen)
	}
	// Reserved and busy while its files are made, so nothing else sees a
	// half-made upload.
	u := &upload{rec: rec, busy: true}
	s.ups[id] = u
	s.working.Add(1)
	s.mu.Unlock()
	defer s.working.Done()

	// The part file first: a record is never without it (Open drops a
	// part without a record).
	err = func() error {
		f, err := os.OpenFile(s.path(id, ".part"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return s.writeRecord(rec)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.ups, id)
		_ = os.Remove(s.path(id, ".part"))
		return Info{}, s.classify(fmt.Errorf("uploads: create %s: %w", id, err))
	}
	u.busy = false
	return s.info(rec), nil
}

// Stat returns the upload id as it is durable now.
func (s *Store) Stat(id string) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.getLocked(id)
	if err != nil {
		return Info{}, err
	}
	return s.info(u.rec), nil
}

func (s *Store) getLocked(id string) (*upload, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q is not an upload id", ErrNotFound, id)
	}
	u, ok := s.ups[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return u, nil
}

// take marks id busy for the caller, who must call done.
func (s *Store) take(id string) (*upload, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	u, err := s.getLocked(id)
	if err != nil {
		return nil, nil, err
	}
	if u.busy {
		return nil, nil, fmt.Errorf("%w: another request is writing upload %s; retry once it ends", ErrBusy, id)
	}
	u.busy = true
	s.working.Add(1)
	return u, func() {
		s.mu.Lock()
		u.busy = false
		s.mu.Unlock()
		s.working.Done()
	}, nil
}

// OffsetError is the ErrOffset of an append: it carries what is stored, so
// the client learns where to go on.
type OffsetError struct {
	Stored int64 // bytes stored
	Asked  int64 // the offset the append asked for
}

func (e *OffsetError) Error() string {
	return fmt.Sprintf("%v: the upload holds %d bytes, so an append must start at %d, not %d", ErrOffset, e.Stored, e.Stored, e.Asked)
}

// Unwrap makes errors.Is(err, ErrOffset) hold.
func (e *OffsetError) Unwrap() error { return ErrOffset }

// Append writes the bytes of r at offset off of upload id. n is the
// length the request declared (-1: unknown, up to the end of r); a body
// longer than n is refused with ErrBadRange and changes nothing.
//
// A body that ends early or fails (the client went away) keeps the bytes
// that arrived: they are what a resumed upload goes on from. The error
// then says so, and Info is what is stored. A failed write to the disk
// keeps only what its last checkpoint made durable.
func (s *Store) Append(ctx context.Context, id string, off int64, r io.Reader, n int64) (Info, error) {
	u, done, err := s.take(id)
	if err != nil {
		return Info{}, err
	}
	defer done()
	start := u.rec
	if off != start.Size {
		return s.info(start), &OffsetError{Stored: start.Size, Asked: off}
	}
	if max := s.cfg.MaxSize; max > 0 && n >= 0 && start.Size+n > max {
		return s.info(start), fmt.Errorf("%w: %d bytes stored and %d more is over the maximum of %d", ErrTooLarge, start.Size, n, max)
	}
	if err := s.checkSpace(); err != nil {
		return s.info(start), err
	}
	h, err := restoreHash(start.SHA256)
	if err != nil {
		return s.info(start), err
	}
	f, err := os.OpenFile(s.path(id, ".part"), os.O_WRONLY, 0)
	if err != nil {
		return s.info(start), fmt.Errorf("uploads: open %s: %w", id, err)
	}
	defer f.Close()
	// Bytes past the record are the rest of a write that failed.
	if err := f.Truncate(start.Size); err != nil {
		return s.info(start), s.classify(fmt.Errorf("uploads: cut %s back to %d bytes: %w", id, start.Size, err))
	}
	if _, err := f.Seek(start.Size, io.SeekStart); err != nil {
		return s.info(start), fmt.Errorf("uploads: seek %s: %w", id, err)
	}
	a := &appender{s: s, u: u, f: f, h: h, durable: start}
	readErr, writeErr := a.copy(ctx, r, n)
	if writeErr != nil {
		// The disk failed us: back to the last durable state.
		_ = f.Truncate(a.durable.Size)
		return s.info(a.durable), s.classify(fmt.Errorf("uploads: write %s at %d: %w", id, a.size, writeErr))
	}
	if errors.Is(readErr, ErrBadRange) || errors.Is(readErr, ErrTooLarge) {
		// Too long a body: the whole append is refused.
		if err := a.rollback(start); err != nil {
			return s.info(a.durable), err
		}
		return s.info(start), readErr
	}
	if err := a.checkpoint(); err != nil {
		_ = f.Truncate(a.durable.Size)
		return s.info(a.durable), err
	}
	info := s.info(a.durable)
	switch {
	case readErr != nil:
		return info, fmt.Errorf("upload %s: body failed after %d bytes, which are kept (it holds %d): %w", id, a.size-start.Size, info.Size, readErr)
	case n >= 0 && a.size-start.Size < n:
		return info, fmt.Errorf("%w: the body ended after %d of its %d bytes; those are kept (the upload holds %d)", ErrBadRange, a.size-start.Size, n, info.Size)
	}
	return info, nil
}

// appender is one append in progress.
type appender struct {
	s       *Store
	u       *upload
	f       *os.File
	h       hash.Hash
	size    int64  // bytes in the part file
	durable record // the last record written
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// copy appends r to the part file, n bytes at most (-1: all), with a
// checkpoint every checkpointEvery bytes. It returns the error of the
// body, ErrBadRange for a body longer than n, and the error of the disk.
func (a *appender) copy(ctx context.Context, r io.Reader, n int64) (readErr, writeErr error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	a.size = a.durable.Size
	var sinceCheckpoint, got int64
	max := a.s.cfg.MaxSize
	for {
		if err := ctx.Err(); err != nil {
			return err, nil
		}
		want := int64(len(buf))
		if n >= 0 {
			// One byte past n tells a longer body.
			want = min(want, n-got+1)
		}
		k, err := r.Read(buf[:want])
		if n >= 0 && got+int64(k) > n {
			return fmt.Errorf("%w: the body is longer than its %d bytes", ErrBadRange, n), nil
		}
		if max > 0 && a.size+int64(k) > max {
			return fmt.Errorf("%w: over the maximum of %d bytes", ErrTooLarge, max), nil
		}
		if k > 0 {
			if _, werr := a.f.Write(buf[:k]); werr != nil {
				return nil, werr
			}
			a.h.Write(buf[:k])
			a.size += int64(k)
			got += int64(k)
			sinceCheckpoint += int64(k)
			if sinceCheckpoint >= checkpointEvery {
				if werr := a.checkpoint(); werr != nil {
					return nil, werr
				}
				sinceCheckpoint = 0
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// checkpoint makes the bytes appended so far durable: the part file, then
// the record that counts them.
func (a *appender) checkpoint() error {
	if a.size == a.durable.Size {
		return nil
	}
	if err := a.f.Sync(); err != nil {
		return a.s.classify(fmt.Errorf("uploads: sync %s: %w", a.durable.ID, err))
	}
	st, err := marshalHash(a.h)
	if err != nil {
		return err
	}
	rec := a.durable
	rec.Size, rec.SHA256, rec.Updated = a.size, st, a.s.cfg.Now()
	if err := a.s.writeRecord(rec); err != nil {
		return a.s.classify(err)
	}
	a.durable = rec
	a.s.mu.Lock()
	a.u.rec = rec
	a.s.mu.Unlock()
	return nil
}

// rollback undoes an append back to rec, which was durable before it.
func (a *appender) rollback(rec record) error {
	if a.durable.Size != rec.Size {
		if err := a.s.writeRecord(rec); err != nil {
			return a.s.classify(err)
		}
		a.durable = rec
		a.s.mu.Lock()
		a.u.rec = rec
		a.s.mu.Unlock()
	}
	if err := a.f.Truncate(rec.Size); err != nil {
		return fmt.Errorf("uploads: cut %s back to %d bytes: %w", rec.ID, rec.Size, err)
	}
	return nil
}

// Complete checks that upload id's bytes have digest ("sha256:<hex>") and
// hands them to push, with their size; once push succeeds the upload is
// removed. When push fails the upload stays, so the completion can be
// tried again. A wrong digest is ErrDigest, and push is not called.
func (s *Store) Complete(id, digest string, push func(body io.Reader, size int64) error) error {
	u, done, err := s.take(id)
	if err != nil {
		return err
	}
	defer done()
	rec := u.rec
	h, err := restoreHash(rec.SHA256)
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: upload %s holds %d bytes of digest %s, not %s", ErrDigest, id, rec.Size, got, digest)
	}
	f, err := os.Open(s.path(id, ".part"))
	if err != nil {
		return fmt.Errorf("uploads: open %s: %w", id, err)
	}
	defer f.Close()
	if err := push(io.NewSectionReader(f, 0, rec.Size), rec.Size); err != nil {
		return err
	}
	return s.removeBusy(id)
}

// Delete cancels upload id and removes its bytes.
func (s *Store) Delete(id string) error {
	_, done, err := s.take(id)
	if err != nil {
		return err
	}
	defer done()
	return s.removeBusy(id)
}

// removeBusy removes upload id, which the caller holds busy.
func (s *Store) removeBusy(id string) error {
	// The record first: without it the part is a stray file Open removes.
	if err := os.Remove(s.path(id, ".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("uploads: remove %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.ups, id)
	s.mu.Unlock()
	if err := os.Remove(s.path(id, ".part")); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove the bytes of a finished upload", "id", id, "error", err)
	}
	syncDir(s.cfg.Dir)
	return nil
}

// Expire removes the uploads that saw no append for the TTL, except those
// busy now, and returns how many it removed and their bytes.
func (s *Store) Expire() (n int, bytes int64) {
	now := s.cfg.Now()
	s.mu.Lock()
	var old []string
	for id, u := range s.ups {
		if !u.busy && !now.Before(u.rec.Updated.Add(s.cfg.TTL)) {
			old = append(old, id)
		}
	}
	s.mu.Unlock()
	for _, id := range old {
		u, done, err := s.take(id)
		if err != nil {
			continue // taken or gone since
		}
		size := u.rec.Size // ours while we hold it busy
		if err := s.removeBusy(id); err != nil {
			s.log.Warn("cannot remove an expired upload", "id", id, "error", err)
		} else {
			n++
			bytes += size
		}
		done()
	}
	if n > 0 {
		s.log.Info("expired uploads removed", "count", n, "bytes", bytes)
	}
	return n, bytes
}

// Run expires uploads every interval until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Expire()
	}
}

// Len is the number of open uploads.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ups)
}

// Close refuses new work and waits for the appends and completions in
// flight (their requests' bodies fail once the server closes them).
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.working.Wait()
}

// writeRecord replaces rec's record atomically and durably.
func (s *Store) writeRecord(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("uploads: encode record: %w", err)
	}
	tmp := s.path(rec.ID, ".json.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("uploads: write record of %s: %w", rec.ID, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(rec.ID, ".json"))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("uploads: write record of %s: %w", rec.ID, err)
	}
	syncDir(s.cfg.Dir)
	return nil
}

// syncDir makes renames and removals in dir durable; a failure only
// weakens that, so it is not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (s *Store) checkSpace() error {
	if s.cfg.Space == nil {
		return nil
	}
	if err := s.cfg.Space(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return nil
}

// classify marks a full disk as ErrNoSpace.
func (s *Store) classify(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

func marshalHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("uploads: sha256 state cannot be saved")
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("uploads: save sha256 state: %w", err)
	}
	return b, nil
}

func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("uploads: restore sha256 state: %w", err)
	}
	return h, nil
}
