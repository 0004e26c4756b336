package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pier-registry/pier/cluster"
)

const (
	id1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestPackedBodyRoundTrip(t *testing.T) {
	in := []cluster.PackedShard{
		{ID: id1, Index: 0, Image: []byte("first image")},
		{ID: id2, Index: 2, Image: []byte{}},
		{ID: id1, Index: 1, Image: bytes.Repeat([]byte{7}, 70000)},
	}
	bp, err := packedBody(in)
	if err != nil {
		t.Fatal(err)
	}
	body := *bp
	out, release, err := readPacked(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if len(out) != len(in) {
		t.Fatalf("read %d shards, sent %d", len(out), len(in))
	}
	for i := range in {
		if out[i].ID != in[i].ID || out[i].Index != in[i].Index || !bytes.Equal(out[i].Image, in[i].Image) {
			t.Fatalf("shard %d: sent %s.%d (%d bytes), read %s.%d (%d bytes)", i,
				in[i].ID, in[i].Index, len(in[i].Image), out[i].ID, out[i].Index, len(out[i].Image))
		}
	}
	for _, bad := range []cluster.PackedShard{{ID: "short", Image: nil}, {ID: id1, Index: 256}, {ID: strings.Repeat("zz", 32)}} {
		if _, err := packedBody([]cluster.PackedShard{bad}); err == nil {
			t.Fatalf("%q.%d was encoded", bad.ID, bad.Index)
		}
	}
}

func TestReadPackedRefusesMalformedBodies(t *testing.T) {
	bp, err := packedBody([]cluster.PackedShard{{ID: id1, Index: 1, Image: []byte("0123456789")}})
	if err != nil {
		t.Fatal(err)
	}
	good := *bp
	huge := append([]byte(nil), good[:packedHead]...)
	binary.LittleEndian.PutUint32(huge[33:], 1<<30)
	for name, tc := range map[string]struct {
		body   []byte
		length int64
	}{
		"record header cut":      {good[:20], 20},
		"image cut":              {good[:len(good)-3], int64(len(good) - 3)},
		"image length too large": {huge, int64(len(huge))},
		"body shorter than said": {good, int64(len(good) + 5)},
		"no length":              {good, -1},
		"length over the cap":    {good, maxPackedBody + 1},
	} {
		if _, _, err := readPacked(bytes.NewReader(tc.body), tc.length); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fakeNode records the packed shards it is handed.
type fakeNode struct {
	Node
	got []cluster.PackedShard
}

func (f *fakeNode) ReceivePacked(shards []cluster.PackedShard) error {
	for _, s := range shards {
		s.Image = bytes.Clone(s.Image) // the handler reuses its buffer
		f.got = append(f.got, s)
	}
	return nil
}

func TestPackedEndpoint(t *testing.T) {
	node := &fakeNode{}
	addr, c := serve(t, node, "key")
	shards := []cluster.PackedShard{{ID: id1, Index: 0, Image: []byte("a")}, {ID: id2, Index: 1, Image: []byte("bb")}}
	if err := c.PutPacked(context.Background(), addr, shards); err != nil {
		t.Fatal(err)
	}
	if len(node.got) != 2 || string(node.got[1].Image) != "bb" || node.got[1].ID != id2 {
		t.Fatalf("node got %+v", node.got)
	}
	// A malformed body is refused before the node sees anything.
	node.got = nil
	bp, _ := packedBody(shards)
	body := *bp
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+Prefix+"packed", bytes.NewReader(body[:len(body)-1]))
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d (%s), want 400", resp.StatusCode, msg)
	}
	if len(node.got) != 0 {
		t.Fatalf("node got %d shards from refused calls", len(node.got))
	}
}
