package clustertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// A quota per prefix: pushes that fit go through any node, the one that
// would go over gets 507 naming the quota and leaves nothing bound, a
// re-push of bound bytes still works, and a delete makes room.
func TestQuotaRefusesPushesOverIt(t *testing.T) {
	c := New(t, 3, Options{})
	if r := Do(t, "PUT", c.Nodes[0].URL+"/api/v1/quotas", strings.NewReader(`{"prefix":"team-a/","max_count":2,"max_bytes":300000}`), nil); r.Status != http.StatusOK {
		t.Fatalf("set quota: %d %s", r.Status, r.Body)
	}
	put(t, c.Nodes[1].URL, "team-a/1.bin", bigBytes(1, 100000))
	put(t, c.Nodes[2].URL, "team-a/2.bin", bigBytes(2, 100000))
	for i, node := range c.Nodes {
		r := Do(t, "PUT", node.URL+"/artifacts/team-a/3.bin", bytes.NewReader(bigBytes(3, 1000)), nil)
		var e struct{ Error string }
		json.Unmarshal(r.Body, &e)
		if r.Status != http.StatusInsufficientStorage || !strings.Contains(e.Error, `quota of "team-a/"`) {
			t.Fatalf("push over the count through node %d: %d %q, want 507 naming the quota", i+1, r.Status, e.Error)
		}
	}
	if r := Do(t, "GET", c.Nodes[0].URL+"/api/v1/artifacts/team-a/3.bin", nil, nil); r.Status != http.StatusNotFound {
		t.Fatalf("a refused push is bound: %d", r.Status)
	}
	put(t, c.Nodes[0].URL, "team-a/1.bin", bigBytes(1, 100000), http.StatusOK) // bound bytes again: no room needed
	put(t, c.Nodes[0].URL, "team-b/1.bin", bigBytes(4, 1000))                  // another prefix

	if r := Do(t, "DELETE", c.Nodes[0].URL+"/artifacts/team-a/1.bin", nil, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	// The bytes bound now count: 100000 + 250000 is over 300000.
	r := Do(t, "PUT", c.Nodes[1].URL+"/artifacts/team-a/4.bin", bytes.NewReader(bigBytes(5, 250000)), nil)
	if r.Status != http.StatusInsufficientStorage {
		t.Fatalf("push over the bytes: %d %s", r.Status, r.Body)
	}
	put(t, c.Nodes[1].URL, "team-a/4.bin", bigBytes(5, 150000))
	var got struct {
		Quotas []map[string]any `json:"quotas"`
	}
	// Each node applies the pushes in its own time.
	Eventually(t, Wait(), func() error {
		Do(t, "GET", c.Nodes[2].URL+"/api/v1/quotas", nil, nil).JSON(t, &got)
		if len(got.Quotas) != 1 || got.Quotas[0]["used_count"].(float64) != 2 || got.Quotas[0]["used_bytes"].(float64) != 250000 {
			return fmt.Errorf("quota usage %v", got.Quotas)
		}
		return nil
	})
}
