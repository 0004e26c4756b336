package objects

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

func TestPipedHashMatchesSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, hashChunk - 1, hashChunk, hashChunk + 1, 5*hashChunk + 12345} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		p := newPipedHash()
		for rest := data; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(3*hashChunk/2))
			if n, err := p.Write(rest[:k]); n != k || err != nil {
				t.Fatalf("write: %d %v", n, err)
			}
			rest = rest[k:]
		}
		want := sha256.Sum256(data)
		if got := p.Sum(); !bytes.Equal(got, want[:]) {
			t.Fatalf("%d bytes: digest %x, want %x", size, got, want)
		}
		p.Close() // after Sum: harmless
	}
}

// A push that fails closes the hash without a digest; its goroutine ends.
func TestPipedHashClosedEarly(t *testing.T) {
	p := newPipedHash()
	p.Write(make([]byte, 3*hashChunk+7))
	p.Close()
	p.Close()
	select {
	case <-p.done:
	default:
		t.Fatal("hashing goroutine still running after Close")
	}
}
