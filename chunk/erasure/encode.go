package erasure

import (
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/reedsolomon"
)

// Encoder cuts a stream into stripes and computes their parity. It is safe
// for concurrent use; each Encode call takes its own stripe buffer from a
// pool.
type Encoder struct {
	s         Scheme
	blockSize int
	rs        reedsolomon.Encoder // nil when M == 0
}

// NewEncoder returns an encoder for scheme s with full blocks of blockSize
// bytes.
func NewEncoder(s Scheme, blockSize int) (*Encoder, error) {
	if err := (Layout{Scheme: s, BlockSize: blockSize}).Validate(); err != nil {
		return nil, err
	}
	e := &Encoder{s: s, blockSize: blockSize}
	if s.M > 0 {
		rs, err := rsFor(s, blockSize)
		if err != nil {
			return nil, err
		}
		e.rs = rs
	}
	return e, nil
}

// Encode reads r to EOF and calls emit once per stripe, in order, with the
// stripe's K data blocks followed by its M parity blocks; shards[i] goes to
// shard file i. All blocks of a stripe have the same length,
// Layout.BlockLen(stripe) for the returned size. The blocks are only valid
// during the call: they are reused for the next stripe, which is what keeps
// memory at one stripe however large the object. Encode returns the number of
// bytes read; an error from emit stops encoding and is returned as is.
//
// Encode does not hash the content; EncodeHashed does.
func (e *Encoder) Encode(r io.Reader, emit func(stripe int, shards [][]byte) error) (int64, error) {
	return e.EncodeHashed(r, nil, emit)
}

// EncodeHashed is Encode that also writes every byte read to h (nil: no
// hash), in order. Each stripe is hashed straight from the stripe buffer on
// a goroutine of its own, beside the stripe's parity and emit, and the
// buffer is refilled only once the hash has it: a push hashes every byte
// (SHA-256 is its largest cost), and an io.TeeReader would hash on the
// encoding goroutine, or, handed to another goroutine, copy every byte once
// more.
func (e *Encoder) EncodeHashed(r io.Reader, h hash.Hash, emit func(stripe int, shards [][]byte) error) (int64, error) {
	k, n := e.s.K, e.s.Shards()
	bs := e.blockSize
	slab := getSlab(n * bs)
	// Deferred first so it runs last: the last stripe may still be hashing
	// when the loop returns, and a slab back in the pool is refilled by
	// another encode (which made pushes hash the wrong bytes).
	defer putSlab(slab)
	var hashing stripeHasher
	if h != nil {
		hashing.start(h)
		defer hashing.stop()
	}
	buf := *slab
	data := buf[:k*bs]
	shards := make([][]byte, n)

	var size int64
	for stripe := 0; ; stripe++ {
		hashing.wait() // the hash of the previous stripe is done with data
		got, err := io.ReadFull(r, data)
		size += int64(got)
		if h != nil && got > 0 {
			hashing.send(data[:got])
		}
		switch {
		case errors.Is(err, io.EOF):
			return size, nil // got == 0: previous stripe was the last
		case errors.Is(err, io.ErrUnexpectedEOF):
			// Short last stripe: split the tail into K equal blocks and
			// zero the padding, which still holds the previous stripe.
		case err != nil:
			return size, fmt.Errorf("read stripe %d: %w", stripe, err)
		}
		bl := (got + k - 1) / k
		clear(data[got : k*bl])
		for i := range k {
			shards[i] = data[i*bl : (i+1)*bl : (i+1)*bl]
		}
		for i := k; i < n; i++ {
			shards[i] = buf[i*bs : i*bs+bl : i*bs+bl]
		}
		if e.rs != nil {
			if err := e.rs.Encode(shards); err != nil {
				return size, fmt.Errorf("encode stripe %d: %w", stripe, err)
			}
		}
		if err := emit(stripe, shards); err != nil {
			return size, err
		}
		if got < len(data) {
			return size, nil
		}
	}
}

// stripeHasher hashes stripes on a goroutine of its own, one at a time.
type stripeHasher struct {
	work    chan []byte
	done    chan struct{}
	pending bool
}

func (s *stripeHasher) start(h hash.Hash) {
	s.work = make(chan []byte)
	s.done = make(chan struct{})
	go func() {
		for b := range s.work {
			h.Write(b)
			s.done <- struct{}{}
		}
		close(s.done)
	}()
}

// send hands b to the hasher; b must not change until wait returns.
func (s *stripeHasher) send(b []byte) {
	s.work <- b
	s.pending = true
}

// wait returns once the hasher is done with what it was sent.
func (s *stripeHasher) wait() {
	if s.pending {
		<-s.done
		s.pending = false
	}
}

// stop waits for the last stripe's hash and ends the goroutine, so h holds
// every byte read when Encode returns.
func (s *stripeHasher) stop() {
	s.wait()
	close(s.work)
	<-s.done
}
