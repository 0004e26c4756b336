package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pier-registry/pier/chunk/erasure"
)

// shardRole says which shard of the object of size bytes node nd holds, read
// from the headers of the shard files in its data dir. A pull's cost depends
// on it: a node holding a data shard reads part of the object locally, one
// holding parity only fetches every data shard from its peers.
func shardRole(nd *pierNode, size int64) string {
	role := "no shard file"
	_ = filepath.WalkDir(filepath.Join(nd.data, "data", "shards"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		h, err := erasure.ReadHeader(f)
		f.Close()
		if err != nil || h.Layout.Size != size {
			return nil
		}
		s := h.Layout.Scheme
		kind := "a data shard"
		if h.Index >= s.K {
			kind = "parity only"
		}
		role = fmt.Sprintf("shard %d of %d+%d (%s)", h.Index, s.K, s.M, kind)
		return filepath.SkipAll
	})
	return role
}
