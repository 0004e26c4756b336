package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
)

// jsonPacked is what the state makes of a line through encoding/json: the
// records recordReader must make when it parses the line itself.
func jsonPacked(t *testing.T, line []byte) (packed, error) {
	t.Helper()
	var rec record
	if err := json.Unmarshal(line, &rec); err != nil {
		return packed{}, err
	}
	switch {
	case rec.Artifact != nil:
		return packed{a: newArtifact(rec.Artifact)}, nil
	case rec.Object != nil:
		o, err := newObject(rec.Object)
		return packed{o: o}, err
	case rec.Tombstone != nil:
		return packed{t: rec.Tombstone}, nil
	case rec.History != nil:
		for i := range rec.History.Events {
			rec.History.Events[i].intern()
		}
		return packed{h: &history{name: rec.History.Name, events: rec.History.Events}}, nil
	}
	return packed{}, nil
}

// checkLine fails the test if recordReader parses line itself into
// anything but what encoding/json makes of it. It reports whether the
// reader parsed the line itself.
func checkLine(t *testing.T, line []byte) bool {
	t.Helper()
	got, ok := (&recordReader{interned: map[string]string{}}).parse(line)
	if !ok {
		return false
	}
	want, err := jsonPacked(t, line)
	if err != nil {
		t.Fatalf("parsed %q, which encoding/json refuses: %v", line, err)
	}
	if got.a != nil {
		got.a.digest, got.digest = string(got.digest), nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nparsed    %+v %+v %+v %+v\nencoding/json %+v %+v %+v %+v", line,
			got.a, got.o, got.t, got.h, want.a, want.o, want.t, want.h)
	}
	return true
}

// The lines recordReader parses itself it parses as encoding/json does,
// and every other line goes to encoding/json: the snapshot's lines, and
// random damage to them (escapes, numbers in other forms, fields out of
// order, white space, invalid UTF-8), which must never be parsed into
// something encoding/json would not decode or would decode otherwise.
func TestRecordReaderMatchesEncodingJSON(t *testing.T) {
	raw, err := os.ReadFile(fixtureSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(append(raw, snapshotBytes(t, oddFSM(t))...), []byte("\n"))
	// Shapes encoding/json takes and recordWriter never writes.
	for _, l := range []string{
		`{"a":{"name":"x","size":1,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06Z","labels":{"b":"1","a":"2"},"tags":[],"seq":1}}`,
		`{"a":{"name":"x","size":1,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06Z","labels":{"a":"1","a":"2"},"tags":[],"seq":1}}`,
		`{"a":{"name":"x","size":1,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06Z","labels":null,"tags":null,"seq":1}}`,
		`{"a":{"name":"x","size":-0,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06+01:00","labels":{},"tags":["b","a","b"],"seq":18446744073709551615}}`,
		`{"a":{"name":"\u0078","size":1,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06Z","labels":{},"tags":[],"seq":1}}`,
		`{"o":{"id":"i","k":2147483647,"m":-2147483648,"block_size":0,"placement":[],"missing":[],"digest":"d","size":-9223372036854775808,"refs":0,"corrupt":""}}`,
		`{"o":{"id":"i","k":2147483648,"m":0,"block_size":0,"placement":null,"digest":"d","size":0,"refs":0}}`,
		`{"o":{"id":"i","k":1,"m":0,"block_size":0,"placement":["a","a"],"missing":[9223372036854775808],"digest":"d","size":0,"refs":0}}`,
		`{"o":{"id":"i","k":1,"m":0,"block_size":0,"placement":["a"],"missing":[0,10,-1],"digest":"d","size":9223372036854775808,"refs":0}}`,
		`{"t":{"name":"n","digest":"d","deleted":"2001-02-03T04:05:06.5-07:00"}}`,
		`{"t":{"name":"n","digest":"d","deleted":null}}`,
		`{"h":{"name":"n","events":[]}}`,
		`{"h":{"name":"n","events":[{"tag":"t","action":"add","actor":"","time":"2001-02-03T04:05:06Z"}]}}`,
		`{"o":{"id":"i","k":1,"m":0,"block_size":0,"placement":["a"],"digest":"d","size":0,"refs":0},"a":{"name":"x"}}`,
		`{"o":{"id":"i","k":1,"m":0,"block_size":0,"placement":["a"],"digest":"d","size":0,"refs":0}} `,
	} {
		lines = append(lines, []byte(l))
	}
	fast := 0
	for _, l := range lines {
		if checkLine(t, l) {
			fast++
		}
	}
	// Nearly every line of a snapshot is one the reader parses itself.
	if fast < len(lines)*3/4 {
		t.Fatalf("parsed %d of %d lines itself", fast, len(lines))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	damage := []string{`\`, `"`, `0`, `1`, `-`, `.`, `e`, ` `, `,`, `}`, `]`, `{`, `[`, ":", "\x80", "\xff", "\n", `\u0041`, `null`, `""`}
	damagedFast := 0
	for range 50000 {
		l := bytes.Clone(lines[rng.IntN(len(lines))])
		if len(l) == 0 {
			continue
		}
		for range 1 + rng.IntN(2) {
			i := rng.IntN(len(l))
			switch d := []byte(damage[rng.IntN(len(damage))]); rng.IntN(3) {
			case 0:
				l = append(l[:i:i], append(d, l[i+1:]...)...)
			case 1:
				l = append(l[:i:i], append(d, l[i:]...)...)
			default:
				l = append(l[:i:i], l[i+1:]...)
			}
		}
		if checkLine(t, l) {
			damagedFast++
		}
	}
	t.Logf("parsed %d of %d lines and %d of 50000 damaged ones itself", fast, len(lines), damagedFast)
}

// A snapshot read and written again is the same bytes, whichever way each
// line was read; and lines of any length, and a last line with no
// newline, are read.
func TestRestoreRoundTrip(t *testing.T) {
	want := snapshotBytes(t, oddFSM(t))
	for _, in := range [][]byte{want, bytes.TrimSuffix(want, []byte("\n")), bytes.ReplaceAll(want, []byte("\n"), []byte("\n\n"))} {
		f := New()
		if err := f.Restore(io.NopCloser(bytes.NewReader(in))); err != nil {
			t.Fatal(err)
		}
		if got := snapshotBytes(t, f); !bytes.Equal(got, want) {
			t.Fatalf("restored and written again, the snapshot differs:\n%s", diffLines(want, got))
		}
	}
	long := []byte(`{"v":1,"applied":7}` + "\n" + `{"a":{"name":"` + string(bytes.Repeat([]byte("n"), 600<<10)) +
		`","size":1,"digest":"d","version":"v","commit":"c","created":"2001-02-03T04:05:06Z","labels":{},"tags":[],"seq":1}}`)
	f := New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(long))); err != nil {
		t.Fatal(err)
	}
	if c := f.Counts(); c.Artifacts != 1 || f.Applied() != 7 {
		t.Fatalf("a line longer than the read buffer: %+v, applied %d", c, f.Applied())
	}
}

// guardedReader fails the test if it is read after closed is set.
type guardedReader struct {
	t      *testing.T
	r      io.Reader
	closed atomic.Bool
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if g.closed.Load() {
		g.t.Error("the snapshot was read after Restore returned")
	}
	return g.r.Read(p)
}

// A restore that fails part way (a line nothing reads, a number a record
// cannot hold) returns its error, keeps the state it had, and reads
// nothing more once it returns: the records parsed ahead stop with it.
func TestRestoreFailsPartWay(t *testing.T) {
	f := New()
	apply(t, f, 1, put("kept.jar", 'a', 0))
	good := snapshotBytes(t, oddFSM(t))
	var many bytes.Buffer
	many.Write(good)
	for i := range 5000 {
		fmt.Fprintf(&many, `{"t":{"name":"t%d","digest":"d","deleted":"2001-02-03T04:05:06Z"}}`+"\n", i)
	}
	for name, tail := range map[string]string{
		"undecodable": "{\"t\":\n",
		"too big":     `{"o":{"id":"i","k":1,"m":0,"block_size":0,"placement":["a"],"digest":"x","size":0,"refs":4294967296}}` + "\n",
	} {
		in := append(bytes.Clone(many.Bytes()), tail...)
		for range 3 {
			in = append(in, many.Bytes()[len(good):]...)
		}
		g := &guardedReader{t: t, r: bytes.NewReader(in)}
		err := f.Restore(io.NopCloser(g))
		g.closed.Store(true)
		if err == nil {
			t.Fatalf("%s: restored", name)
		}
		if _, ok := f.Get("kept.jar"); !ok || f.Counts().Tombstones != 0 {
			t.Fatalf("%s: the state changed: %+v", name, f.Counts())
		}
	}
}

// Each kind of line recordWriter writes, the reader parses itself.
func TestRecordReaderParsesWhatRecordWriterWrites(t *testing.T) {
	kinds := map[string]int{}
	for _, l := range bytes.Split(snapshotBytes(t, oddFSM(t)), []byte("\n")) {
		if len(l) > 6 && checkLine(t, l) {
			kinds[string(l[2:3])]++
		}
	}
	for _, k := range []string{"a", "o", "t", "h"} {
		if kinds[k] == 0 {
			t.Errorf("no %q line parsed by the reader itself (%v)", k, kinds)
		}
	}
}
