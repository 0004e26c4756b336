package fsm

import (
	"bufio"
	"runtime"
	"strconv"
	"time"
	"unicode/utf8"
)

// recordWriter writes snapshot records byte for byte as encoding/json's
// Encoder writes the record type (TestRecordWriterMatchesEncodingJSON),
// straight from the stored records. Through encoding/json, Persist spent
// ten seconds per million artifacts building each artifact's label map to
// encode it and reflecting over every field, and the garbage it made kept
// the collector busy beside Apply for all that time.
type recordWriter struct {
	w   *bufio.Writer
	buf []byte
	n   int
}

// yieldEvery is how many records Persist writes between yields of its
// processor. Persist runs beside the FSM goroutine and, on a machine with
// few cores, beside the collector too; without yielding, Apply could wait
// for the scheduler's 10 ms preemption of a busy Persist (run-queue waits
// of 29 ms were measured at 10M artifacts on two cores). A thousand
// records take about a millisecond.
const yieldEvery = 1000

func newRecordWriter(w *bufio.Writer) *recordWriter {
	return &recordWriter{w: w, buf: make([]byte, 0, 4096)}
}

// flush writes one finished record line.
func (rw *recordWriter) flush() error {
	rw.buf = append(rw.buf, '}', '}', '\n')
	_, err := rw.w.Write(rw.buf)
	rw.buf = rw.buf[:0]
	if rw.n++; rw.n%yieldEvery == 0 {
		runtime.Gosched()
	}
	return err
}

func (rw *recordWriter) artifact(a *artifact) error {
	b := append(rw.buf, `{"a":{"name":`...)
	b = appendString(b, a.name)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, a.size, 10)
	b = append(b, `,"digest":`...)
	b = appendString(b, a.digest)
	b = append(b, `,"version":`...)
	b = appendString(b, a.version)
	b = append(b, `,"commit":`...)
	b = appendString(b, a.commit)
	b = append(b, `,"created":`...)
	b, err := appendTime(b, a.created())
	if err != nil {
		return err
	}
	// Labels are packed in key order, the order encoding/json sorts a
	// map's keys in.
	b = append(b, `,"labels":{`...)
	isKey, first := true, true
	for s := range listItems(a.labels) {
		switch {
		case isKey && !first:
			b = append(b, ',')
			fallthrough
		case isKey:
			b = appendString(b, s)
			b = append(b, ':')
		default:
			b = appendString(b, s)
		}
		isKey, first = !isKey, false
	}
	b = append(b, `},"tags":[`...)
	first = true
	for t := range listItems(a.tags) {
		if !first {
			b = append(b, ',')
		}
		b = appendString(b, t)
		first = false
	}
	b = append(b, `],"seq":`...)
	rw.buf = strconv.AppendUint(b, a.seq, 10)
	return rw.flush()
}

func (rw *recordWriter) object(o *object) error {
	b := append(rw.buf, `{"o":{"id":`...)
	b = appendString(b, o.id)
	b = append(b, `,"k":`...)
	b = strconv.AppendInt(b, int64(o.k), 10)
	b = append(b, `,"m":`...)
	b = strconv.AppendInt(b, int64(o.m), 10)
	b = append(b, `,"block_size":`...)
	b = strconv.AppendInt(b, int64(o.blockSize), 10)
	// An object without placement exports a nil slice: null.
	b = append(b, `,"placement":`...)
	if o.placement == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		first := true
		for n := range nodes(o.placement) {
			if !first {
				b = append(b, ',')
			}
			b = appendString(b, n)
			first = false
		}
		b = append(b, ']')
	}
	if o.missing != "" {
		// Shard indexes are packed in decimal: JSON numbers already.
		b = append(b, `,"missing":[`...)
		first := true
		for m := range listItems(o.missing) {
			if !first {
				b = append(b, ',')
			}
			b = append(b, m...)
			first = false
		}
		b = append(b, ']')
	}
	b = append(b, `,"digest":`...)
	b = appendString(b, o.digest)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, o.size, 10)
	b = append(b, `,"refs":`...)
	b = strconv.AppendInt(b, int64(o.refs), 10)
	if o.corrupt != "" {
		b = append(b, `,"corrupt":`...)
		b = appendString(b, o.corrupt)
	}
	rw.buf = b
	return rw.flush()
}

func (rw *recordWriter) tombstone(t *Tombstone) error {
	b := append(rw.buf, `{"t":{"name":`...)
	b = appendString(b, t.Name)
	b = append(b, `,"digest":`...)
	b = appendString(b, t.Digest)
	b = append(b, `,"deleted":`...)
	b, err := appendTime(b, t.Deleted)
	if err != nil {
		return err
	}
	rw.buf = b
	return rw.flush()
}

func (rw *recordWriter) node(id string, st NodeState) error {
	b := append(rw.buf, `{"n":{"node":`...)
	b = appendString(b, id)
	b = append(b, `,"state":`...)
	rw.buf = appendString(b, string(st))
	return rw.flush()
}

func (rw *recordWriter) history(h *history) error {
	b := append(rw.buf, `{"h":{"name":`...)
	b = appendString(b, h.name)
	b = append(b, `,"events":`...)
	if h.events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, e := range h.events {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"tag":`...)
			b = appendString(b, e.Tag)
			b = append(b, `,"action":`...)
			b = appendString(b, e.Action)
			if e.Actor != "" {
				b = append(b, `,"actor":`...)
				b = appendString(b, e.Actor)
			}
			b = append(b, `,"time":`...)
			var err error
			if b, err = appendTime(b, e.Time); err != nil {
				return err
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	rw.buf = b
	return rw.flush()
}

// appendTime appends t as time.Time's MarshalJSON does, and fails where it
// fails (a year outside 0-9999).
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string as encoding/json does with HTML
// escaping on (its Encoder's default): <, > and & as \u003c and so on,
// invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
