package peer

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pier-registry/pier/transport/clustertls"
)

// serve starts node's peer service over mutual TLS under key and returns
// its address and a client holding the same key.
func serve(t *testing.T, node Node, key string) (string, *Client) {
	t.Helper()
	creds, err := clustertls.New("server", key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(Handler(node))
	srv.TLS = creds.Server()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cc, err := clustertls.New("client", key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "https://"), NewClient(cc.Client())
}

// A caller without the cluster key gets nowhere: not with a certificate
// of another key, not without one, not in plain HTTP.
func TestPeerServiceRefusesCallersWithoutTheKey(t *testing.T) {
	node := &shardNode{got: map[int]bool{}}
	addr, _ := serve(t, node, "right key")
	other, err := clustertls.New("intruder", "wrong key")
	if err != nil {
		t.Fatal(err)
	}
	if err := NewClient(other.Client()).Ping(t.Context(), addr); err == nil {
		t.Error("a client signed under another key was answered")
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := noCert.Get("https://" + addr + Prefix + "ping"); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate got %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + addr + Prefix + "ping"); err == nil && resp.StatusCode < 400 {
		resp.Body.Close()
		t.Errorf("a plain-HTTP client got %d", resp.StatusCode)
	}
	if len(node.got) != 0 {
		t.Fatalf("node received %d shards", len(node.got))
	}
}

// The handler itself refuses a request that did not come over verified
// TLS, should it ever be mounted on a plain listener.
func TestHandlerRefusesUnverifiedRequests(t *testing.T) {
	srv := httptest.NewServer(Handler(&shardNode{got: map[int]bool{}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + Prefix + "ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
}
