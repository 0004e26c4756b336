package erasure

import (
	"fmt"
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
	key := rsKey{s, blockSize}
	if enc, ok := rsCache.Load(key); ok {
		return enc.(reedsolomon.Encoder), nil
	}
	enc, err := reedsolomon.New(s.K, s.M, reedsolomon.WithAutoGoroutines(blockSize))
	if err != nil {
		return nil, fmt.Errorf("reed-solomon %v: %w", s, err)
	}
	actual, _ := rsCache.LoadOrStore(key, enc)
	return actual.(reedsolomon.Encoder), nil
}
