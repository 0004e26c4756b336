package erasure

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

var testSchemes = []Scheme{{1, 0}, {1, 1}, {2, 1}, {2, 2}, {3, 2}, {4, 2}}

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type object struct {
	l      Layout
	digest [32]byte
	data   []byte
	files  [][]byte // shard file bytes, index = shard
}

func (o *object) header(i int) Header { return Header{Object: o.digest, Index: i, Layout: o.l} }

// encodeObject runs data through Encoder and ShardWriter into in-memory
// shard files.
func encodeObject(t testing.TB, s Scheme, blockSize int, data []byte) *object {
	t.Helper()
	o := &object{l: Layout{Scheme: s, BlockSize: blockSize, Size: int64(len(data))}, digest: sha256.Sum256(data), data: data}
	enc, err := NewEncoder(s, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([]*bytes.Buffer, s.Shards())
	ws := make([]*ShardWriter, s.Shards())
	for i := range ws {
		bufs[i] = new(bytes.Buffer)
		if ws[i], err = NewShardWriter(bufs[i], o.header(i)); err != nil {
			t.Fatal(err)
		}
	}
	size, err := enc.Encode(bytes.NewReader(data), func(stripe int, shards [][]byte) error {
		for i, sh := range shards {
			if err := ws[i].WriteBlock(sh); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) {
		t.Fatalf("Encode returned size %d, want %d", size, len(data))
	}
	for i, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := int64(bufs[i].Len()), o.l.ShardFileSize(); got != want {
			t.Fatalf("shard %d file is %d bytes, ShardFileSize says %d", i, got, want)
		}
		o.files = append(o.files, bufs[i].Bytes())
	}
	return o
}

// read records which (shard, stripe) blocks Decode asked for.
type readLog struct {
	mu    sync.Mutex
	reads map[[2]int]int
	opens map[int]int
}

func newReadLog() *readLog { return &readLog{reads: map[[2]int]int{}, opens: map[int]int{}} }

type loggedReader struct {
	BlockReader
	shard int
	log   *readLog
}

func (r loggedReader) ReadBlock(stripe int, dst []byte) ([]byte, error) {
	r.log.mu.Lock()
	r.log.reads[[2]int{r.shard, stripe}]++
	r.log.mu.Unlock()
	return r.BlockReader.ReadBlock(stripe, dst)
}

// opener serves o.files through NewShardReaderAt. Shards in lost are
// reported unavailable; log, if not nil, records every open and read.
func (o *object) opener(lost map[int]bool, log *readLog) OpenFunc {
	return func(i int) (BlockReader, error) {
		if log != nil {
			log.mu.Lock()
			log.opens[i]++
			log.mu.Unlock()
		}
		if lost[i] {
			return nil, nil
		}
		sr, err := NewShardReaderAt(bytes.NewReader(o.files[i]), o.header(i))
		if err != nil {
			return nil, err
		}
		if log != nil {
			return loggedReader{sr, i, log}, nil
		}
		return sr, nil
	}
}

func (o *object) decode(t testing.TB, lost map[int]bool, off, n int64) ([]byte, []Fault, error) {
	t.Helper()
	var out bytes.Buffer
	faults, err := Decode(o.l, o.opener(lost, nil), &out, off, n)
	return out.Bytes(), faults, err
}

// combinations returns every subset of {0..n-1} with at most max elements.
func combinations(n, max int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		out = append(out, append([]int(nil), cur...))
		if len(cur) == max {
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

func setOf(xs []int) map[int]bool {
	m := map[int]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func testSizes(s Scheme, bs int) []int {
	stripe := s.K * bs
	return []int{0, 1, bs - 1, bs, bs + 1, stripe - 1, stripe, stripe + 1, 3*stripe + bs/2 + 7}
}

func name(s Scheme, size int) string { return fmt.Sprintf("%v/size=%d", s, size) }
