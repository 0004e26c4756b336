package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pier-registry/pier/cluster"
)

var (
	// errBodyIdle marks a push whose body stopped coming for longer than
	// Options.BodyIdleTimeout (408).
	errBodyIdle = errors.New("request body stalled")
	// errTooManyUploads marks a push over Options.MaxUploadsPerClient (429).
	errTooManyUploads = errors.New("too many uploads in flight from this client")
)

// uploadSlots counts the pushes in flight per client address.
type uploadSlots struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

func newUploadSlots(max int) *uploadSlots {
	return &uploadSlots{max: max, n: map[string]int{}}
}

// acquire takes a slot for client, or reports that it holds them all.
func (s *uploadSlots) acquire(client string) bool {
	if s.max < 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[client] >= s.max {
		return false
	}
	s.n[client]++
	return true
}

func (s *uploadSlots) release(client string) {
	if s.max < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[client] <= 1 {
		delete(s.n, client)
		return
	}
	s.n[client]--
}

// clientIP is the address a client's uploads are counted under.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admitPush refuses what a push must not start with, before a byte of its
// body is read: one more upload from a client that holds every slot, and a
// declared length over the maximum object size (slack is what the request
// may carry besides the object). On success the caller must call the
// returned release when the push ends.
func (a *API) admitPush(w http.ResponseWriter, r *http.Request, slack int64) (release func(), ok bool) {
	client := clientIP(r)
	if !a.slots.acquire(client) {
		w.Header().Set("Retry-After", "1")
		a.fail(w, r, fmt.Errorf("%w: %d at most", errTooManyUploads, a.opts.MaxUploadsPerClient))
		return nil, false
	}
	release = func() { a.slots.release(client) }
	if limit := a.opts.MaxObjectSize; limit > 0 && r.ContentLength > limit+slack {
		release()
		a.fail(w, r, fmt.Errorf("%w: a body of %d bytes is over the maximum object size of %d bytes", cluster.ErrTooLarge, r.ContentLength, limit))
		return nil, false
	}
	return release, true
}

// idleBody is a request body that the connection's read deadline cuts when
// no byte of it comes for idle. The deadline is pushed forward as bytes
// arrive, at most once per step, so a stall is cut between idle and
// idle+step after the last byte. Once the body has ended the deadline is
// left alone: net/http clears it then to watch the idle connection.
type idleBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	step     time.Duration
	armed    time.Time
	ended    bool
	timedOut atomic.Bool
}

// watchBody puts r.Body under the idle deadline of the options, if any,
// and returns it; cause tells its errors apart afterwards.
func (a *API) watchBody(w http.ResponseWriter, r *http.Request) *idleBody {
	b := &idleBody{ReadCloser: r.Body, idle: a.opts.BodyIdleTimeout}
	if b.idle > 0 {
		b.rc = http.NewResponseController(w)
		b.step = min(time.Second, b.idle/4)
	}
	r.Body = b
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.rc != nil && !b.ended {
		if now := time.Now(); now.Sub(b.armed) >= b.step {
			// An error means the connection cannot have deadlines (not a
			// TCP connection): the body is then read without one.
			if b.rc.SetReadDeadline(now.Add(b.idle+b.step)) == nil {
				b.armed = now
			}
		}
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut.Store(true)
		err = b.err()
	}
	return n, err
}

func (b *idleBody) err() error {
	return fmt.Errorf("%w: no byte of the body for %s", errBodyIdle, b.idle)
}

// cause is err, unless the body stalled: a push that fails because its
// body stopped coming fails for that, whatever the reader of the body
// made of the error.
func (b *idleBody) cause(err error) error {
	if b.timedOut.Load() {
		return b.err()
	}
	return err
}
