package pullcache

import (
	"fmt"
	"os"
	"sync"
)

// blockStore keeps the block buffers that fills and readers let go of, up
// to a bound, instead of handing them to the garbage collector as a
// sync.Pool does after two collections. New memory is slow memory on the
// VMs of BENCHMARKS.md: one hypervisor takes back what the guest frees and
// faults it in again at 3.3-3.7 ms per MiB; on another the kernel's first
// copy out of a new page costs a twentieth of its later speed (warm). A
// node keeps at most its rings' memory this way.
type blockStore struct {
	mu   sync.Mutex
	free []*[]byte
	keep int
}

func newBlockStore(keep int) *blockStore { return &blockStore{keep: keep} }

// get returns a block buffer, a kept one when there is one.
func (s *blockStore) get() *[]byte {
	s.mu.Lock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		s.mu.Unlock()
		return b
	}
	s.mu.Unlock()
	return alignedBlock()
}

// put gives back a buffer from get; beyond the bound it goes to the
// garbage collector.
func (s *blockStore) put(b *[]byte) {
	s.mu.Lock()
	if len(s.free) < s.keep {
		s.free = append(s.free, b)
	}
	s.mu.Unlock()
}

// warm makes n buffers resident, so that the first fill after the node
// starts finds them so: it writes to every page of each (the runtime knows
// fresh memory from the system is zero and leaves it untouched), and then
// has the kernel read each whole buffer once, writing it to a scratch file
// in dir. That second pass matters on a paravirtualized guest (the VM of
// BENCHMARKS.md): its kernel reaches user pages through page tables of its
// own, which the host fills a page at a time on first use, and without it
// the first fill's socket writes ran at a twentieth of their later speed
// (perf: 87 ms in tcp_sendmsg's copy for 64 MiB, against 3 ms in a pull of
// the same object through reused buffers).
func (s *blockStore) warm(n int, dir string) error {
	scratch, err := os.CreateTemp(dir, ".warm-")
	if err != nil {
		return fmt.Errorf("warm pull cache buffers: %w", err)
	}
	defer os.Remove(scratch.Name())
	defer scratch.Close()
	for range min(n, s.keep) {
		b := alignedBlock()
		for i := 0; i < len(*b); i += 4096 {
			(*b)[i] = 0
		}
		if _, err := scratch.WriteAt(*b, 0); err != nil {
			s.put(b)
			return fmt.Errorf("warm pull cache buffers: %w", err)
		}
		s.put(b)
	}
	return nil
}
