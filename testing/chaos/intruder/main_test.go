package main

import (
	"testing"

	"github.com/pier-registry/pier/fsm"
)

// The forged batch must be one a node would take from its leader: every
// command valid, the planted bytes matching their digest. Otherwise a
// refusal would show nothing about the key.
func TestForgedBatchIsValid(t *testing.T) {
	cfg := config{nodes: []string{"pier1"}, targets: []string{"a/app-1.0.txt", "a/app-1.0.bin"}}
	entries, err := fsm.DecodeBatch(forgedBatch(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want a tag per target and a put", len(entries))
	}
	var ops []fsm.Op
	for _, e := range entries {
		c, err := fsm.CheckEntry(e)
		if err != nil {
			t.Fatalf("entry %s: %v", e.Command, err)
		}
		ops = append(ops, c.Op)
	}
	if ops[0] != fsm.OpTag || ops[1] != fsm.OpTag || ops[2] != fsm.OpPutArtifact {
		t.Fatalf("ops %v", ops)
	}
}
