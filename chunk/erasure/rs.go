package erasure

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/klauspost/reedsolomon"
)

type rsKey struct {
	s         Scheme
	blockSize int
}

// rsCache shares one Reed-Solomon codec per scheme and block size: the
// codec is safe for concurrent use, building it inverts matrices, and its
// cache of decode matrices only pays off if it outlives a single transfer.
var rsCache sync.Map // rsKey -> reedsolomon.Encoder

func rsFor(s Scheme, blockSize int) (reedsolomon.Encoder, error) {
	// Small objects have a block size of their own length; keyed by it, the
	// cache would hold a codec for every size ever pushed. The size only
	// tunes the codec's goroutine split, so a power of two above it will do.
	key := rsKey{s, 1 << bits.Len(uint(max(blockSize, 1)-1))}
	if enc, ok := rsCache.Load(key); ok {
		return enc.(reedsolomon.Encoder), nil
	}
	enc, err := reedsolomon.New(s.K, s.M, reedsolomon.WithAutoGoroutines(key.blockSize))
	if err != nil {
		return nil, fmt.Errorf("reed-solomon %v: %w", s, err)
	}
	actual, _ := rsCache.LoadOrStore(key, enc)
	return actual.(reedsolomon.Encoder), nil
}
