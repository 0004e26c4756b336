package objects

import (
	"crypto/sha256"
	"hash"
)

// pipedHash is a SHA-256 that hashes on a goroutine of its own. A push's
// encoding goroutine was its bottleneck, and a third of its time went to
// hashing (SHA-256 runs at about 1.3 GB/s on the 2-core VM): handing the
// bytes over costs one copy, and the hash then runs beside the encoding.
// Writes block once hashChunks chunks wait, so memory stays bounded.
type pipedHash struct {
	h      hash.Hash
	fill   *[]byte // the chunk being filled, nil before the first write
	work   chan *[]byte
	done   chan struct{}
	closed bool
}

// Chunks come from the frame pool (getFrame): at least hashChunk bytes,
// filled to their capacity before they are queued.
const (
	hashChunk  = 512 << 10
	hashChunks = 2
)

func newPipedHash() *pipedHash {
	p := &pipedHash{h: sha256.New(), work: make(chan *[]byte, hashChunks), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for b := range p.work {
			p.h.Write(*b)
			putFrame(b)
		}
	}()
	return p
}

// Write queues a copy of b to be hashed. It never fails.
func (p *pipedHash) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.fill == nil {
			p.fill = getFrame(hashChunk)
		}
		f := *p.fill
		k := copy(f[len(f):cap(f)], b)
		*p.fill = f[:len(f)+k]
		b = b[k:]
		if len(*p.fill) == cap(*p.fill) {
			p.work <- p.fill
			p.fill = nil
		}
	}
	return n, nil
}

// Sum waits for every byte written to be hashed and returns the digest.
// Nothing may be written after it.
func (p *pipedHash) Sum() []byte {
	if p.fill != nil {
		p.work <- p.fill
		p.fill = nil
	}
	p.Close()
	return p.h.Sum(nil)
}

// Close stops the hashing goroutine; a push that failed calls it instead
// of Sum. It may be called more than once.
func (p *pipedHash) Close() {
	if !p.closed {
		p.closed = true
		close(p.work)
	}
	<-p.done
}
