package main

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
)

// A node refuses to start without a cluster key unless told it may run
// insecure; earlier builds formed an open cluster by default.
func TestServeNeedsAClusterKey(t *testing.T) {
	base := serveFlags{id: "n1", httpAddr: "127.0.0.1:0", gossipAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", dataDir: t.TempDir()}
	for _, tc := range []struct {
		name       string
		key        string
		accept     string
		insecure   bool
		wantErr    string
		wantKey    string
		wantAccept int
	}{
		{name: "no key", wantErr: "no cluster key"},
		{name: "key", key: "k1", wantKey: "k1"},
		{name: "rotation", key: "k2", accept: "k1, k3", wantKey: "k2", wantAccept: 2},
		{name: "insecure", insecure: true, wantKey: cluster.InsecureClusterKey},
		{name: "insecure and key", key: "k1", insecure: true, wantErr: "exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			f.clusterKey, f.acceptKeys, f.insecure = tc.key, tc.accept, tc.insecure
			cfg, err := f.config(hclog.NewNullLogger())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Node.ClusterKey != tc.wantKey || len(cfg.Node.AcceptKeys) != tc.wantAccept {
				t.Fatalf("key %q accept %q, want %q and %d more", cfg.Node.ClusterKey, cfg.Node.AcceptKeys, tc.wantKey, tc.wantAccept)
			}
		})
	}
}
