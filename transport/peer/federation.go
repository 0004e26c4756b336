package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/fsm"
)

// FederationNode is what the feed routes need of a node. Nodes of other
// datacenters call them: the WAN is federation's, but the calls are peer
// calls, over the same mutual TLS, so only a node holding the cluster key
// (every datacenter of a federation shares it) gets an answer.
type FederationNode interface {
	FederationFeed(after uint64, limit int) cluster.FeedPage
	OpenContent(ctx context.Context, name string) (io.ReadCloser, fsm.Artifact, error)
}

// maxFeedPage bounds the records one feed read returns.
const maxFeedPage = 4096

func routeFederation(mux *http.ServeMux, n Node) {
	fn, ok := n.(FederationNode)
	if !ok {
		return
	}
	routeRecord(mux, n)
	mux.HandleFunc("GET "+Prefix+"feed", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, err1 := strconv.ParseUint(q.Get("after"), 10, 64)
		limit, err2 := strconv.Atoi(q.Get("limit"))
		if err1 != nil || err2 != nil || limit < 0 {
			httpError(w, http.StatusBadRequest, "after and limit are required non-negative integers")
			return
		}
		writeJSON(w, http.StatusOK, fn.FederationFeed(after, min(limit, maxFeedPage)))
	})
	mux.HandleFunc("GET "+Prefix+"content", func(w http.ResponseWriter, r *http.Request) {
		rc, a, err := fn.OpenContent(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			if errorsIsNotFound(err) {
				httpError(w, http.StatusNotFound, err.Error())
				return
			}
			writeErr(w, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
		w.Header().Set("X-Pier-Digest", a.Digest)
		w.WriteHeader(http.StatusOK)
		_, _ = io.Copy(w, rc)
	})
}

func errorsIsNotFound(err error) bool { return errors.Is(err, fsm.ErrNotFound) }

var _ federation.Remote = (*Client)(nil)

// Feed implements federation.Remote: it reads the change feed of the
// node at addr after index after.
func (c *Client) Feed(ctx context.Context, addr string, after uint64, limit int) (federation.FeedPage, error) {
	path := fmt.Sprintf("%sfeed?after=%d&limit=%d", Prefix, after, limit)
	resp, err := c.do(ctx, http.MethodGet, addr, path, nil)
	if err != nil {
		return federation.FeedPage{}, fmt.Errorf("read feed of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var page federation.FeedPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return federation.FeedPage{}, fmt.Errorf("decode feed of %s: %w: %w", addr, cluster.ErrPeerUnreachable, err)
	}
	return page, nil
}

// Fetch implements federation.Remote: it streams the content of name from
// the node at addr. The caller verifies it (the write path hashes it).
func (c *Client) Fetch(ctx context.Context, addr, name string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, addr, Prefix+"content?name="+url.QueryEscape(name), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", name, addr, err)
	}
	return resp.Body, nil
}
