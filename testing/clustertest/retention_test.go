package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pier-registry/pier/fsm"
)

// shardFiles sums the sizes of the shard files of object id on a node.
func shardFiles(n *Node, id string) (files int, bytes int64) {
	dir := filepath.Join(n.cfg.Node.DataDir, "data", "shards", id[:2])
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+".") {
			if fi, err := e.Info(); err == nil {
				files++
				bytes += fi.Size()
			}
		}
	}
	return files, bytes
}

// Retention with keep-last 3 over 10 versions, one old version protected
// by its tag: 6 are deleted, the protected one kept, the deleted ones'
// shard files disappear from every node while pushes and pulls of other
// artifacts go on without an error, and the deleted names stay bound.
func TestRetentionDeletesAndReclaimsOnline(t *testing.T) {
	c := New(t, 3, Options{})
	base := c.Nodes[0].URL
	bodies := map[string][]byte{}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("myapp-%02d.jar", i)
		bodies[name] = bigBytes(uint64(100+i), 256<<10)
		put(t, base, name, bodies[name])
	}
	if r := Do(t, "PUT", base+"/api/v1/tags/production-ready?name=myapp-02.jar", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("tag: %d", r.Status)
	}
	ids := map[string]string{}
	for name := range bodies {
		ids[name] = object(t, c, name).ID
	}

	// Pushes and pulls of other artifacts run throughout, bounded in
	// count and time.
	ctx, stop := context.WithTimeout(t.Context(), 2*Wait())
	defer stop()
	var wg sync.WaitGroup
	var loopErrs []string
	var mu sync.Mutex
	ops := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := &http.Client{Timeout: Wait()}
		for i := 0; i < 400 && ctx.Err() == nil; i++ {
			name := fmt.Sprintf("other/%d.bin", i)
			body := bigBytes(uint64(1000+i), 64<<10)
			node := c.Nodes[i%3].URL
			err := func() error {
				req, _ := http.NewRequestWithContext(ctx, "PUT", node+"/artifacts/"+name, bytes.NewReader(body))
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					return fmt.Errorf("push %s: %d", name, resp.StatusCode)
				}
				req, _ = http.NewRequestWithContext(ctx, "GET", c.Nodes[(i+1)%3].URL+"/artifacts/myapp-10.jar", nil)
				resp, err = hc.Do(req)
				if err != nil {
					return err
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, bodies["myapp-10.jar"]) {
					return fmt.Errorf("pull myapp-10.jar: %d, %d bytes, %v", resp.StatusCode, len(got), err)
				}
				return nil
			}()
			mu.Lock()
			if err != nil && ctx.Err() == nil {
				loopErrs = append(loopErrs, err.Error())
			}
			ops++
			mu.Unlock()
		}
	}()

	policy := `{"prefix":"myapp-","keep_last":3,"protect_tags":["production-ready"]}`
	if r := Do(t, "PUT", c.Nodes[1].URL+"/api/v1/retention", strings.NewReader(policy), nil); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	var dry struct {
		Deleted []struct{ Name string }
	}
	Do(t, "POST", c.Nodes[2].URL+"/api/v1/retention/run?dry_run=true", nil, nil).JSON(t, &dry)
	if len(dry.Deleted) != 6 {
		t.Fatalf("dry run lists %d deletions, want 6", len(dry.Deleted))
	}
	if _, ok := c.Nodes[0].Srv.Node.FSM().Get("myapp-01.jar"); !ok {
		t.Fatal("a dry run deleted")
	}

	// Bytes the deleted artifacts hold on each node before the run.
	held := make([]int64, len(c.Nodes))
	var run struct {
		Deleted []struct{ Name string }
	}
	for i, n := range c.Nodes {
		for _, d := range dry.Deleted {
			_, b := shardFiles(n, ids[d.Name])
			held[i] += b
		}
	}
	Do(t, "POST", c.Nodes[2].URL+"/api/v1/retention/run", nil, nil).JSON(t, &run)
	var got []string
	for _, d := range run.Deleted {
		got = append(got, d.Name)
	}
	slices.Sort(got)
	want := []string{"myapp-01.jar", "myapp-03.jar", "myapp-04.jar", "myapp-05.jar", "myapp-06.jar", "myapp-07.jar"}
	if !slices.Equal(got, want) {
		t.Fatalf("retention deleted %v, want %v", got, want)
	}
	for _, name := range []string{"myapp-02.jar", "myapp-08.jar", "myapp-09.jar", "myapp-10.jar"} {
		if r := Do(t, "GET", c.Nodes[1].URL+"/artifacts/"+name, nil, nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, bodies[name]) {
			t.Fatalf("kept %s: %d", name, r.Status)
		}
	}

	// Garbage collection takes the deleted objects' shards on every node.
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			for _, name := range want {
				if files, _ := shardFiles(n, ids[name]); files > 0 {
					return fmt.Errorf("%s still holds %d shard files of %s", n.ID, files, name)
				}
			}
		}
		return nil
	})
	for i, n := range c.Nodes {
		t.Logf("%s: %d KiB of deleted artifacts' shards reclaimed", n.ID, held[i]>>10)
	}

	// A deleted name stays bound to its bytes.
	r := Do(t, "PUT", base+"/artifacts/myapp-01.jar", bytes.NewReader([]byte("other bytes")), nil)
	var e struct{ Error string }
	json.Unmarshal(r.Body, &e)
	if r.Status != http.StatusConflict || !strings.Contains(e.Error, "deleted") {
		t.Fatalf("re-push of a deleted name with other bytes: %d %q, want 409 saying it was deleted", r.Status, e.Error)
	}

	stop()
	wg.Wait()
	if len(loopErrs) > 0 {
		t.Fatalf("%d of %d push/pull rounds beside retention failed: %v", len(loopErrs), ops, loopErrs[:min(5, len(loopErrs))])
	}
	t.Logf("%d push/pull rounds beside retention, none failed", ops)
	if st := c.Nodes[2].Srv.Node.Stats(); st.RetentionDeleted != 6 {
		t.Fatalf("stats: %d deleted by retention, want 6", st.RetentionDeleted)
	}
	// The audit log has each deletion, by whoever ran retention.
	Eventually(t, Wait(), func() error {
		var log struct{ Entries []fsm.AuditEntry }
		Do(t, "GET", c.Nodes[0].URL+"/api/v1/audit?action=delete", nil, nil).JSON(t, &log)
		var names []string
		for _, e := range log.Entries {
			if strings.HasSuffix(e.Actor, "(retention run)") && e.Outcome == "deleted" {
				names = append(names, e.Target)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			return fmt.Errorf("audit log deletions %v, want %v", names, want)
		}
		return nil
	})
}
