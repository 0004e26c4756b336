package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// recordReader reads a snapshot's lines. The lines recordWriter writes
// (objects, artifacts, tombstones, histories: nearly all of a snapshot)
// it parses itself, straight into the packed records the state keeps;
// any other line, or one that differs in the least from that shape (an
// escaped string, a field out of order, a number in another form), goes
// to encoding/json, so what it accepts is exactly what encoding/json
// accepts, decoded to the same values (TestRecordReaderMatchesEncodingJSON).
//
// Why: through encoding/json a restore spent half its time in reflection
// and made several times the state's size in garbage (a label map per
// artifact, a copy of every string), so its peak RSS stood a quarter
// above the restored state's and 10M artifacts took three and a half
// minutes. The only garbage left per record is what the collector must
// not see anyway: nothing, besides the strings the record keeps.
//
// The snapshot is read a line at a time: encoding/json's Encoder, which
// wrote snapshots before recordWriter, ends every value with a newline
// and never writes one inside a value.
type recordReader struct {
	r    *bufio.Reader
	long []byte // a line longer than the reader's buffer, put together
	// interned maps the bytes of tags, actors and actions to
	// their interned strings, so that a repeated one costs no allocation
	// (a lookup by string(b) does not copy b).
	interned map[string]string
	items    []string // scratch for packing lists
	events   []TagEvent
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 256<<10), interned: map[string]string{}}
}

// packed is a record the reader parsed itself. digest is an artifact's
// digest, which the caller shares with its object's; it is valid until
// the next call.
type packed struct {
	a      *artifact
	digest []byte
	o      *object
	t      *Tombstone
	h      *history
}

// line returns the next line without its newline; io.EOF at the end.
func (rr *recordReader) line() ([]byte, error) {
	rr.long = rr.long[:0]
	for {
		b, err := rr.r.ReadSlice('\n')
		switch {
		case err == nil && len(rr.long) == 0:
			return b[:len(b)-1], nil
		case err == nil:
			rr.long = append(rr.long, b[:len(b)-1]...)
			return rr.long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			rr.long = append(rr.long, b...)
		case err == io.EOF:
			// The last value need not end with a newline.
			rr.long = append(rr.long, b...)
			if len(bytes.TrimSpace(rr.long)) == 0 {
				return nil, io.EOF
			}
			return rr.long, nil
		default:
			return nil, err
		}
	}
}

// next reads the next record: into p when it parses the line itself, else
// into rec through encoding/json. Blank lines are skipped, as
// encoding/json's Decoder skips white space between values.
func (rr *recordReader) next(rec *record) (p packed, err error) {
	for {
		line, err := rr.line()
		if err != nil {
			return packed{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if p, ok := rr.parse(line); ok {
			return p, nil
		}
		return packed{}, json.Unmarshal(line, rec)
	}
}

// parse parses the shapes recordWriter writes; false for anything else.
func (rr *recordReader) parse(line []byte) (packed, bool) {
	sc := scanner{b: line, ok: true}
	switch {
	case sc.skip(`{"o":{"id":`):
		o := rr.object(&sc)
		return packed{o: o}, sc.end()
	case sc.skip(`{"a":{"name":`):
		a, digest := rr.artifact(&sc)
		return packed{a: a, digest: digest}, sc.end()
	case sc.skip(`{"t":{"name":`):
		t := &Tombstone{}
		t.Name = string(sc.str())
		sc.lit(`,"digest":`)
		t.Digest = string(sc.str())
		sc.lit(`,"deleted":`)
		t.Deleted = sc.time()
		sc.lit("}}")
		return packed{t: t}, sc.end()
	case sc.skip(`{"h":{"name":`):
		h := rr.history(&sc)
		return packed{h: h}, sc.end()
	}
	return packed{}, false
}

// artifact parses what follows `{"a":{"name":` into the record newArtifact
// makes of the Artifact encoding/json would decode, but for its digest,
// which it returns for the caller to share.
func (rr *recordReader) artifact(sc *scanner) (*artifact, []byte) {
	a := &artifact{}
	name := sc.str()
	sc.lit(`,"size":`)
	a.size = sc.int()
	sc.lit(`,"digest":`)
	digest := sc.str()
	sc.lit(`,"version":`)
	version := sc.str()
	sc.lit(`,"commit":`)
	commit := sc.str()
	sc.lit(`,"created":`)
	created := sc.time()
	a.sec, a.nsec = created.Unix(), int32(created.Nanosecond())
	// Labels as newArtifact packs them: in key order. encoding/json writes
	// a map's keys sorted; keys out of order (or twice, where the map
	// keeps the last) go to encoding/json.
	sc.lit(`,"labels":{`)
	kv := rr.items[:0]
	sc.list("}", func() {
		k := sc.str()
		if n := len(kv); n > 0 && string(k) <= kv[n-2] {
			sc.ok = false
		}
		sc.lit(":")
		kv = append(kv, unsafeString(k), unsafeString(sc.str()))
	})
	sc.lit(`,"tags":[`)
	n := len(kv)
	sc.list("]", func() {
		kv = append(kv, unsafeString(sc.str()))
	})
	rr.items = kv[:0]
	sc.lit(`,"seq":`)
	a.seq = sc.uint()
	sc.lit("}}")
	if !sc.ok {
		return nil, nil
	}
	a.setStrings(unsafeString(name), "", unsafeString(version), unsafeString(commit), kv[:n], kv[n:])
	return a, digest
}

// object parses what follows `{"o":{"id":` into the record newObject makes
// of the Object encoding/json would decode.
func (rr *recordReader) object(sc *scanner) *object {
	o := &object{}
	id := sc.str()
	sc.lit(`,"k":`)
	k := sc.int()
	sc.lit(`,"m":`)
	m := sc.int()
	sc.lit(`,"block_size":`)
	bs := sc.int()
	sc.lit(`,"placement":`)
	var nodes []string
	if !sc.skip("null") {
		sc.lit("[")
		nodes = rr.items[:0]
		sc.list("]", func() {
			nodes = append(nodes, unsafeString(sc.str()))
		})
		// [] decodes to an empty slice, which packs as null does: the
		// record keeps no difference between them, as newObject.
		rr.items = nodes[:0]
	}
	if sc.skip(`,"missing":[`) {
		missing := make([]string, 0, 4)
		sc.list("]", func() {
			// newObject packs strconv.Itoa of each: the digits as written
			// when they have no sign and no leading zero (sc.digits) and
			// fit an int, as encoding/json requires.
			d := sc.digits()
			if _, err := strconv.ParseInt(unsafeString(d), 10, 64); err != nil {
				sc.ok = false
			}
			missing = append(missing, unsafeString(d))
		})
		o.missing = packList(missing)
	}
	sc.lit(`,"digest":`)
	digest := sc.str()
	sc.lit(`,"size":`)
	o.size = sc.int()
	sc.lit(`,"refs":`)
	refs := sc.int()
	var corrupt []byte
	if sc.skip(`,"corrupt":`) {
		corrupt = sc.str()
	}
	sc.lit("}}")
	// newObject refuses numbers an int32 cannot hold: encoding/json's
	// path gives the same error.
	for _, n := range []int64{k, m, bs, refs} {
		if n != int64(int32(n)) {
			sc.ok = false
		}
	}
	if !sc.ok {
		return nil
	}
	o.k, o.m, o.blockSize, o.refs = int32(k), int32(m), int32(bs), int32(refs)
	o.setStrings(unsafeString(digest), unsafeString(id), nodes)
	o.corrupt = string(corrupt)
	return o
}

// history parses what follows `{"h":{"name":`, its strings interned as
// TagEvent.intern does.
func (rr *recordReader) history(sc *scanner) *history {
	name := sc.str()
	sc.lit(`,"events":`)
	var events []TagEvent
	if !sc.skip("null") {
		sc.lit("[")
		events = rr.events[:0]
		sc.list("]", func() {
			var e TagEvent
			sc.lit(`{"tag":`)
			e.Tag = rr.intern(sc.str())
			sc.lit(`,"action":`)
			e.Action = rr.intern(sc.str())
			if sc.skip(`,"actor":`) {
				e.Actor = rr.intern(sc.str())
			}
			sc.lit(`,"time":`)
			e.Time = sc.time()
			sc.lit("}")
			events = append(events, e)
		})
		rr.events = events[:0]
		// encoding/json decodes [] to an empty slice, not nil.
		events = append(make([]TagEvent, 0, len(events)), events...)
	}
	sc.lit("}}")
	if !sc.ok {
		return nil
	}
	return &history{name: string(name), events: events}
}

// intern returns the interned string of b, allocating only the first time.
func (rr *recordReader) intern(b []byte) string {
	if s, ok := rr.interned[string(b)]; ok {
		return s
	}
	s := intern(string(b))
	rr.interned[s] = s
	return s
}

// unsafeString views b as a string without copying it, for a string used
// only while b is unchanged: packList copies what it packs.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// scanner matches a line against an expected shape. Every method leaves
// ok false at the first byte that does not fit, after which the results
// are zero and the line goes to encoding/json.
type scanner struct {
	b  []byte
	ok bool
}

// skip consumes s if the line goes on with it.
func (sc *scanner) skip(s string) bool {
	if !sc.ok || !bytes.HasPrefix(sc.b, []byte(s)) {
		return false
	}
	sc.b = sc.b[len(s):]
	return true
}

// lit consumes s, which must come next.
func (sc *scanner) lit(s string) {
	if !sc.skip(s) {
		sc.ok = false
	}
}

// list consumes the comma-separated elements of an array or object and
// its closing bracket, each element by elem.
func (sc *scanner) list(close string, elem func()) {
	for i := 0; sc.ok && !sc.skip(close); i++ {
		if i > 0 {
			sc.lit(",")
		}
		elem()
	}
}

// end reports whether the whole line fit.
func (sc *scanner) end() bool { return sc.ok && len(sc.b) == 0 }

// str consumes a JSON string that decodes to its own bytes: no escapes,
// no control characters, valid UTF-8. It returns the bytes between the
// quotes, valid until the line changes.
func (sc *scanner) str() []byte {
	if !sc.ok || len(sc.b) == 0 || sc.b[0] != '"' {
		sc.ok = false
		return nil
	}
	ascii := true
	for i := 1; i < len(sc.b); i++ {
		c := sc.b[i]
		if c == '\\' || c < 0x20 {
			break
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		if c != '"' {
			continue
		}
		s := sc.b[1:i]
		if !ascii && !utf8.Valid(s) {
			// encoding/json turns invalid bytes into U+FFFD.
			break
		}
		sc.b = sc.b[i+1:]
		return s
	}
	sc.ok = false
	return nil
}

// digits consumes an unsigned decimal number as JSON writes it: no sign,
// no leading zero, no fraction or exponent.
func (sc *scanner) digits() []byte {
	n := 0
	for n < len(sc.b) && sc.b[n] >= '0' && sc.b[n] <= '9' {
		n++
	}
	if !sc.ok || n == 0 || n > 1 && sc.b[0] == '0' || n < len(sc.b) && strings.IndexByte(".eE", sc.b[n]) >= 0 {
		sc.ok = false
		return nil
	}
	d := sc.b[:n]
	sc.b = sc.b[n:]
	return d
}

// int consumes a number encoding/json decodes into an int64 or an int.
func (sc *scanner) int() int64 {
	neg := sc.skip("-")
	d := sc.digits()
	if !sc.ok {
		return 0
	}
	n, err := strconv.ParseUint(unsafeString(d), 10, 64)
	switch {
	case err != nil || n > 1<<63 || !neg && n == 1<<63:
		sc.ok = false
		return 0
	case neg:
		return -int64(n)
	}
	return int64(n)
}

// uint consumes a number encoding/json decodes into a uint64.
func (sc *scanner) uint() uint64 {
	d := sc.digits()
	if !sc.ok {
		return 0
	}
	n, err := strconv.ParseUint(unsafeString(d), 10, 64)
	if err != nil {
		sc.ok = false
	}
	return n
}

// time consumes a time as time.Time's UnmarshalJSON reads it, which is
// what encoding/json calls.
func (sc *scanner) time() time.Time {
	if !sc.ok || len(sc.b) == 0 || sc.b[0] != '"' {
		sc.ok = false
		return time.Time{}
	}
	end := bytes.IndexByte(sc.b[1:], '"')
	var t time.Time
	if end < 0 || t.UnmarshalJSON(sc.b[:end+2]) != nil {
		sc.ok = false
		return time.Time{}
	}
	sc.b = sc.b[end+2:]
	return t
}

// aheadReader parses a snapshot a few batches of records ahead of the
// caller, on a goroutine of its own, so that on a machine with two cores
// or more parsing and inserting into the tables (about as long as each
// other) overlap. The caller takes the records in the snapshot's order,
// as from recordReader itself: the state it builds does not depend on
// the timing.
type aheadReader struct {
	rr         *recordReader
	full, free chan []item
	stop, done chan struct{}
	cur        []item
	i          int
}

// item is a record parsed ahead, with room for an artifact's digest: the
// line it was a view of is gone by the time the caller takes it.
type item struct {
	p      packed
	rec    record
	err    error
	digest [80]byte
}

const (
	aheadBatches = 4
	aheadBatch   = 512
)

// readAhead starts parsing rr's records ahead. Call close when done.
func readAhead(rr *recordReader) *aheadReader {
	ra := &aheadReader{rr: rr, full: make(chan []item, aheadBatches), free: make(chan []item, aheadBatches),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range aheadBatches {
		ra.free <- make([]item, 0, aheadBatch)
	}
	go ra.run()
	return ra
}

func (ra *aheadReader) run() {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var b []item
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		var err error
		for b = b[:0]; len(b) < cap(b) && err == nil; {
			b = append(b, item{})
			it := &b[len(b)-1]
			it.p, err = ra.rr.next(&it.rec)
			it.err = err
			if it.p.a != nil {
				if len(it.p.digest) <= len(it.digest) {
					it.p.digest = it.digest[:copy(it.digest[:], it.p.digest)]
				} else {
					it.p.digest = bytes.Clone(it.p.digest)
				}
			}
		}
		select {
		case ra.full <- b:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// next is recordReader.next, from the records parsed ahead.
func (ra *aheadReader) next(rec *record) (packed, error) {
	if ra.i == len(ra.cur) {
		if ra.cur != nil {
			// Never blocks: the batches are as many as free holds.
			ra.free <- ra.cur
		}
		b, ok := <-ra.full
		if !ok {
			// run ends after handing over an error, io.EOF included.
			return packed{}, io.ErrUnexpectedEOF
		}
		ra.cur, ra.i = b, 0
	}
	it := &ra.cur[ra.i]
	ra.i++
	*rec = it.rec
	return it.p, it.err
}

// close stops the parsing and waits until it has stopped, so that nothing
// reads from the snapshot once the caller returns.
func (ra *aheadReader) close() {
	close(ra.stop)
	<-ra.done
}
