package metastore

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestQuietLogThinsRepeatedPeerErrors(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	l := newQuietLog(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), func() time.Time { return now })
	for range 5 {
		l.Error("failed to heartbeat to", "peer", "n2", "error", "dial refused")
		l.Named("replication").Error("failed to heartbeat to", "peer", "n3", "error", "dial refused")
		now = now.Add(600 * time.Millisecond)
	}
	l.Error("failed to take snapshot", "error", "disk") // not a repeat kind: always
	l.Error("failed to take snapshot", "error", "disk")
	now = now.Add(time.Minute)
	l.Error("failed to heartbeat to", "peer", "n2", "error", "dial refused")
	out := buf.String()
	if got := strings.Count(out, "failed to heartbeat to"); got != 3 {
		t.Fatalf("%d heartbeat errors logged at error level, want 3 (n2, n3, n2 a minute later):\n%s", got, out)
	}
	if got := strings.Count(out, "failed to take snapshot"); got != 2 {
		t.Fatalf("other errors thinned: %d of 2\n%s", got, out)
	}
}
