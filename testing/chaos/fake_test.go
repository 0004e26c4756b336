package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
)

// fakeRegistry is an in-memory Pier API, correct unless a fault is planted:
//
//	corrupt     reads serve the stored bytes with one byte flipped
//	drop        pushes are acknowledged but nothing is stored
//	stale-tags  metadata reads always show no tags
//	rebind      a push of other bytes under a bound name replaces them
type fakeRegistry struct {
	fault string

	mu   sync.Mutex
	objs map[string][]byte
	tags map[string][]string
}

func newFakeRegistry(fault string) *fakeRegistry {
	return &fakeRegistry{fault: fault, objs: map[string][]byte{}, tags: map[string][]string{}}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (f *fakeRegistry) meta(w http.ResponseWriter, status int, name string) {
	tags := f.tags[name]
	if f.fault == "stale-tags" {
		tags = nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "size": len(f.objs[name]), "digest": digestOf(f.objs[name]), "tags": tags})
}

func fail(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"error":"`+http.StatusText(status)+`"}`)
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/artifacts/") && r.Method == http.MethodPut:
		name := strings.TrimPrefix(p, "/artifacts/")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			fail(w, http.StatusBadRequest)
			return
		}
		if want := r.Header.Get("X-Checksum-Sha256"); want != "" && "sha256:"+want != digestOf(body) {
			fail(w, http.StatusBadRequest)
			return
		}
		if old, ok := f.objs[name]; ok && f.fault != "rebind" {
			if digestOf(old) != digestOf(body) {
				fail(w, http.StatusConflict)
				return
			}
			f.meta(w, http.StatusOK, name)
			return
		}
		f.objs[name] = body
		f.meta(w, http.StatusCreated, name)
		if f.fault == "drop" {
			delete(f.objs, name)
		}
	case strings.HasPrefix(p, "/artifacts/"):
		b, ok := f.objs[strings.TrimPrefix(p, "/artifacts/")]
		if !ok {
			fail(w, http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", `"`+digestOf(b)+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if f.fault == "corrupt" && len(b) > 0 {
			b = slices.Clone(b)
			b[len(b)/2] ^= 0xff
		}
		_, _ = w.Write(b)
	case strings.HasPrefix(p, "/api/v1/artifacts/"):
		name := strings.TrimPrefix(p, "/api/v1/artifacts/")
		if _, ok := f.objs[name]; !ok {
			fail(w, http.StatusNotFound)
			return
		}
		f.meta(w, http.StatusOK, name)
	case strings.HasPrefix(p, "/api/v1/tags/"):
		tag, name := strings.TrimPrefix(p, "/api/v1/tags/"), r.URL.Query().Get("name")
		if _, ok := f.objs[name]; !ok {
			fail(w, http.StatusNotFound)
			return
		}
		ts := slices.DeleteFunc(slices.Clone(f.tags[name]), func(t string) bool { return t == tag })
		if r.Method == http.MethodPut {
			ts = append(ts, tag)
			slices.Sort(ts)
		}
		f.tags[name] = ts
		f.meta(w, http.StatusOK, name)
	case p == "/api/v1/latest":
		for name, ts := range f.tags {
			if strings.HasPrefix(name, r.URL.Query().Get("prefix")) && slices.Contains(ts, r.URL.Query().Get("tag")) {
				w.Header().Set("Location", "/artifacts/"+name)
				w.WriteHeader(http.StatusFound)
				return
			}
		}
		fail(w, http.StatusNotFound)
	default:
		fail(w, http.StatusNotFound)
	}
}

// runAgainstFake drives a short workload against two nodes sharing one fake
// registry, plus directed operations that expose each planted fault for
// sure, then checkpoints and evaluates the scenario.
func runAgainstFake(t *testing.T, fault string) *Result {
	t.Helper()
	reg := newFakeRegistry(fault)
	var nodes []*Node
	for _, name := range []string{"pier1", "pier2"} {
		srv := httptest.NewServer(reg)
		t.Cleanup(srv.Close)
		n, err := newNode(name, strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	h := invariants.NewHistory()
	wl := NewWorkload(WorkloadConfig{Workers: 3, MaxOps: 150, Think: time.Millisecond, MaxLarge: 0}, h, func() []*Node { return nodes }, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const scenario = "s"
	wl.Run(ctx, scenario)

	pool := TagPool(scenario)
	wl.tag(ctx, scenario, 0, nodes[0], invariants.KindTag, pool[0], "alpha")
	wl.info(ctx, scenario, 0, nodes[1], pool[0])
	wl.push(ctx, scenario, 0, nodes[0], "s/rebound", Content{Seed: 1, Size: 100})
	wl.push(ctx, scenario, 0, nodes[1], "s/rebound", Content{Seed: 2, Size: 100})

	res := &Result{Scenario: scenario, Errors: map[string]int{}}
	suite := &Suite{wl: wl, h: h, logf: t.Logf, timing: Timing{Checkpoint: 30 * time.Second, VerifyTries: 2, VerifyBackoff: time.Millisecond}}
	env := &Env{suite: suite, scenario: scenario, res: res}
	env.Checkpoint(ctx, "after", nodes)
	Evaluate(res, h.Ops(), env.checkpoints, map[string]bool{}, "")
	return res
}

func TestWorkloadOnACorrectRegistryPasses(t *testing.T) {
	res := runAgainstFake(t, "")
	if res.Failed() {
		t.Fatalf("violations on a correct registry: %v", res.Violations)
	}
	if res.Ops < 150 || res.Acked < 10 {
		t.Fatalf("workload too thin: %d ops, %d acked", res.Ops, res.Acked)
	}
	// The conflicting push of the directed operations is the only error.
	if res.Errors["http-409"] < 1 {
		t.Errorf("errors: %v", res.Errors)
	}
}

func TestPlantedFaultsAreCaught(t *testing.T) {
	tests := []struct {
		fault string
		check string
	}{
		{"corrupt", invariants.CheckWrongName},
		{"drop", invariants.CheckLostName},
		{"stale-tags", invariants.CheckTagsName},
		{"rebind", invariants.CheckBindingName},
	}
	for _, tc := range tests {
		t.Run(tc.fault, func(t *testing.T) {
			res := runAgainstFake(t, tc.fault)
			if res.Count(tc.check) == 0 {
				t.Fatalf("planted %s not caught by %s: %v", tc.fault, tc.check, res.Violations)
			}
			switch tc.fault {
			case "corrupt":
				if res.Wrong == 0 {
					t.Error("wrong bytes not counted")
				}
			case "drop":
				if res.Lost == 0 {
					t.Error("lost pushes not counted")
				}
			}
		})
	}
}
