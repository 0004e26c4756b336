package main

import (
	"strings"
	"testing"
	"time"
)

// Pier's advantage over a peer is above 1 when Pier did better, whichever
// way the row's figure points, and the verdict takes the worst peer.
func TestPeerColumns(t *testing.T) {
	r := &report{peers: []string{"minio", "seaweedfs"}}
	r.ratioRow("pull (MB/s)", 1000, 900, "MB/s", 0.9, "", peerVals{"minio": 450, "seaweedfs": 600})
	r.latencyRow("p99", 10*time.Millisecond, 20*time.Millisecond, 0, map[string]time.Duration{"minio": 40 * time.Millisecond, "seaweedfs": 10 * time.Millisecond})
	r.costRow("CPU per GiB", 0.2, 0.5, "s", 0, peerVals{"minio": 1.0, "seaweedfs": 0.6})
	r.pierRow("peer reads", "node1 1.00", "<= 1.00 each", true)

	want := []struct {
		adv []float64
		vs  string
	}{
		{[]float64{2, 1.5}, "yes"},
		{[]float64{2, 0.5}, "BELOW 1.0x"},
		{[]float64{2, 1.2}, "1.0-1.5x"},
	}
	for i, w := range want {
		x := r.rows[i]
		for j, adv := range w.adv {
			if got := x.peer[j].adv; got < adv-1e-9 || got > adv+1e-9 {
				t.Errorf("%s: %s advantage %.3f, want %.3f", x.test, r.peers[j], got, adv)
			}
		}
		if x.vs != w.vs {
			t.Errorf("%s: verdict %q, want %q", x.test, x.vs, w.vs)
		}
	}
	if c := r.cells(r.rows[3]); c[len(c)-1] != "-" || c[6] != "-" {
		t.Errorf("a Pier-only row shows peer cells: %q", c)
	}
	var b strings.Builder
	r.markdown(&b)
	if !strings.Contains(b.String(), "| test | nginx | pier | ratio (pier/nginx) | target | met? | minio | pier vs minio | seaweedfs | pier vs seaweedfs | pier >= 1.5x every peer? |") {
		t.Errorf("markdown header:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "| pull (MB/s) | 1,000 MB/s | 900 MB/s | 0.90 | >= 0.90x | yes | 450 MB/s | 2.00x | 600 MB/s | 1.50x | yes |") {
		t.Errorf("markdown row:\n%s", b.String())
	}
}

func TestParseClients(t *testing.T) {
	got, err := parseClients("32, 128")
	if err != nil || len(got) != 2 || got[0] != 32 || got[1] != 128 {
		t.Errorf("parseClients = %v, %v", got, err)
	}
	if got, err := parseClients("none"); err != nil || got != nil {
		t.Errorf("parseClients(none) = %v, %v", got, err)
	}
	for _, in := range []string{"x", "0,4", "2000"} {
		if _, err := parseClients(in); err == nil {
			t.Errorf("parseClients(%q): no error", in)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s sample
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	if p := s.percentile(50); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := s.percentile(99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
}
