package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// t0 is when the first benchmark artifact was pushed; artifact i was pushed
// i milliseconds later, so the newest-first order is the push order.
var t0 = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// nodes are the cluster the benchmark's objects are spread over.
var nodes = func() []string {
	out := make([]string, 12)
	for i := range out {
		out[i] = fmt.Sprintf("node-%02d", i+1)
	}
	return out
}()

// hash is a deterministic 32-byte value for (kind, i).
func hash(kind byte, i int) []byte {
	var b [9]byte
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], uint64(i))
	s := sha256.Sum256(b[:])
	return s[:]
}

// putCommand is the push of artifact i, shaped like a registry's: a
// team/service/release path (about 40 bytes), a version, a commit, two
// labels, a "prod" tag on one in ten, its own object (4+2 shards on 6 of
// 12 nodes) with a digest no other artifact shares.
func putCommand(i int) fsm.Command {
	team, svc, rel := i%32, (i/32)%1024, i/(32*1024)
	version := fmt.Sprintf("%d.%d", rel/100, rel%100)
	placement := make([]string, 6)
	for s := range placement {
		placement[s] = nodes[(i+s)%len(nodes)]
	}
	var tags []string
	if i%10 == 0 {
		tags = []string{"prod"}
	}
	return fsm.Command{
		Op:    fsm.OpPutArtifact,
		Time:  t0.Add(time.Duration(i) * time.Millisecond),
		Actor: "ci",
		Put: &fsm.PutArtifact{
			Name:    fmt.Sprintf("team-%02d/svc-%04d/%s/svc-%04d-%s.tar.gz", team, svc, version, svc, version),
			Digest:  fsm.DigestPrefix + hex.EncodeToString(hash('d', i)),
			Size:    1<<20 + int64(i%4096),
			Version: version,
			Commit:  hex.EncodeToString(hash('c', i)[:20]),
			Labels:  map[string]string{"team": fmt.Sprintf("team-%02d", team), "ci": "build"},
			Tags:    tags,
			Object: fsm.ObjectRef{
				ID: hex.EncodeToString(hash('o', i)), K: 4, M: 2, BlockSize: 1 << 20,
				Placement: placement,
			},
		},
	}
}
