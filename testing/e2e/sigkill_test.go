// Package e2e runs the real pier binary as separate processes, the way
// `make run` does, for what an in-process cluster cannot show: a SIGKILL.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/clustertest"
	"github.com/pier-registry/pier/testing/freeport"
)

type node struct {
	id, http, gossip, raft, dir string
	cmd                         *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

func (n *node) start(t *testing.T, bin, join string) {
	t.Helper()
	args := []string{"serve", "--id", n.id, "--data-dir", n.dir, "--http-addr", n.http,
		"--gossip-addr", n.gossip, "--raft-addr", n.raft, "--bootstrap-expect", "3",
		"--cluster-key", "e2e", "--auth=false", "--log-level", "warn"}
	if join != "" {
		args = append(args, "--join", join)
	}
	n.cmd = exec.Command(bin, args...)
	log, err := os.OpenFile(filepath.Join(filepath.Dir(n.dir), n.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); log.Close() }()
}

func get(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func put(url string, body []byte) (int, error) {
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestSIGKILLTheLeader is issue 2's point 5 with real processes: SIGKILL
// the leader, push through the others within seconds, restart it, and it
// serves everything.
func TestSIGKILLTheLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pier")
	build := exec.Command("go", "build", "-o", bin, "github.com/pier-registry/pier/cmd/pier")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var nodes []*node
	for i := range 3 {
		n := &node{id: fmt.Sprintf("e%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("e%d", i+1)),
			http:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			gossip: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			raft:   fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.cmd != nil && n.cmd.Process != nil {
				n.cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	})
	for i, n := range nodes {
		join := ""
		if i > 0 {
			join = nodes[0].gossip
		}
		n.start(t, bin, join)
	}
	ready := func(n *node) error {
		code, _, err := get("http://" + n.http + "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("%s not ready: %d %v", n.id, code, err)
		}
		return nil
	}
	for _, n := range nodes {
		clustertest.Eventually(t, 60*time.Second, func() error { return ready(n) })
	}

	data := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("pre-%d.bin", i)
		data[name] = make([]byte, 1000+i*300_000)
		rand.NewChaCha8([32]byte{byte(i)}).Read(data[name])
		if code, err := put("http://"+nodes[i%3].http+"/artifacts/"+name, data[name]); err != nil || code != 201 {
			t.Fatalf("push %s: %d %v", name, code, err)
		}
	}
	var m struct{ Leader string }
	_, b, _ := get("http://" + nodes[0].http + "/api/v1/cluster/members")
	json.Unmarshal(b, &m)
	var leader *node
	for _, n := range nodes {
		if n.id == m.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("no leader in %s", b)
	}
	leader.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()

	var others []*node
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	for i, n := range others {
		name := fmt.Sprintf("post-%d.bin", i)
		data[name] = []byte(strings.Repeat(name, 1000))
		clustertest.Eventually(t, 30*time.Second, func() error {
			code, err := put("http://"+n.http+"/artifacts/"+name, data[name])
			if err != nil || (code != 201 && code != 200) {
				return fmt.Errorf("push via %s: %d %v", n.id, code, err)
			}
			return nil
		})
	}
	t.Logf("pushes through the survivors succeeded %s after the SIGKILL", time.Since(killed).Round(time.Millisecond))

	leader.start(t, bin, others[0].gossip)
	clustertest.Eventually(t, 60*time.Second, func() error { return ready(leader) })
	for name, want := range data {
		for _, n := range nodes {
			clustertest.Eventually(t, 30*time.Second, func() error {
				code, got, err := get("http://" + n.http + "/artifacts/" + name)
				if err != nil || code != 200 || sha256.Sum256(got) != sha256.Sum256(want) {
					return fmt.Errorf("pull %s from %s: %d, %d bytes, %v", name, n.id, code, len(got), err)
				}
				return nil
			})
		}
	}
}
