package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A batch is one raft log entry carrying several commands, so that
// concurrent writes share one log append, one replication round and one
// fsync on each server instead of paying for them one by one. Each command
// may carry a blob: the bytes of a small object, which travel in the log
// instead of as shard files (see BlobSink).
//
// Layout: batchMagic, uvarint count, then per command uvarint length and the
// JSON command, uvarint length+1 and the blob (0: no blob, which an empty
// object's empty blob is not). A plain JSON command (the first
// byte is '{') is still a valid entry, so logs written before batching
// replay unchanged.
const batchMagic = 'B'

// MaxBatch bounds the commands in one batch entry.
const MaxBatch = 1024

// Entry is one command of a batch with its blob, if any.
type Entry struct {
	Command []byte
	Blob    []byte
}

// EncodeBatch frames entries as one raft log entry.
func EncodeBatch(entries []Entry) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, e := range entries {
		size += len(e.Command) + len(e.Blob) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, size)
	b = append(b, batchMagic)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Command)))
		b = append(b, e.Command...)
		if e.Blob == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(e.Blob))+1)
		b = append(b, e.Blob...)
	}
	return b
}

var errBatch = errors.New("malformed batch entry")

// DecodeBatch splits a log entry, or a forwarded write framed the same way,
// into its commands. A plain JSON command is a batch of one. The returned
// slices alias b.
func DecodeBatch(b []byte) ([]Entry, error) { return decodeEntries(b) }

func decodeEntries(b []byte) ([]Entry, error) {
	if len(b) == 0 || b[0] != batchMagic {
		return []Entry{{Command: b}}, nil
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count == 0 || count > MaxBatch {
		return nil, fmt.Errorf("%w: count", errBatch)
	}
	b = b[n:]
	// next reads a length-prefixed field; opt says the length is stored
	// plus one, 0 meaning absent.
	next := func(opt bool) ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errBatch
		}
		b = b[n:]
		if opt {
			if l == 0 {
				return nil, nil
			}
			l--
		}
		if l > uint64(len(b)) {
			return nil, errBatch
		}
		v := b[:l:l]
		b = b[l:]
		return v, nil
	}
	out := make([]Entry, 0, count)
	for i := range count {
		cmd, err := next(false)
		if err != nil {
			return nil, fmt.Errorf("command %d: %w", i, err)
		}
		blob, err := next(true)
		if err != nil {
			return nil, fmt.Errorf("blob %d: %w", i, err)
		}
		out = append(out, Entry{Command: cmd, Blob: blob})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBatch, len(b))
	}
	return out, nil
}

// BatchResult is what Apply returns for a batch entry: one Result per
// command, in order.
type BatchResult []Result
