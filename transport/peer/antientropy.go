package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
)

// SummaryNode is what the anti-entropy route needs of a node: a bucket of
// its state's hash tree as another datacenter's leader compares it
// (cluster/federation/antientropy.go). Like the feed, only a node holding
// the cluster key gets an answer.
type SummaryNode interface {
	FederationSummary(req federation.SummaryRequest) (federation.Summary, error)
}

// maxSummaryRequest bounds the request body: a prefix and the reader's
// rules.
const maxSummaryRequest = 1 << 20

func routeAntiEntropy(mux *http.ServeMux, n Node) {
	sn, ok := n.(SummaryNode)
	if !ok {
		return
	}
	mux.HandleFunc("POST "+Prefix+"summary", func(w http.ResponseWriter, r *http.Request) {
		var req federation.SummaryRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxSummaryRequest)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "summary request: "+err.Error())
			return
		}
		s, err := sn.FederationSummary(req)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
}

var _ federation.SummaryRemote = (*Client)(nil)

// Summary implements federation.SummaryRemote: it reads a bucket of the
// hash tree of the node at addr's state.
func (c *Client) Summary(ctx context.Context, addr string, req federation.SummaryRequest) (federation.Summary, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return federation.Summary{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, addr, Prefix+"summary", body)
	if err != nil {
		return federation.Summary{}, fmt.Errorf("read summary %q of %s: %w", req.Prefix, addr, err)
	}
	defer resp.Body.Close()
	var s federation.Summary
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return federation.Summary{}, fmt.Errorf("decode summary of %s: %w: %w", addr, cluster.ErrPeerUnreachable, err)
	}
	return s, nil
}
