package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/fsm"
)

// RecordNode is what the pull-through lookup route needs of a node.
type RecordNode interface {
	FederationRecord(ctx context.Context, name string) (fsm.FeedRecord, error)
}

// routeRecord adds GET record?name=: another datacenter's pull-through
// asks what this cluster binds a name to.
func routeRecord(mux *http.ServeMux, n Node) {
	rn, ok := n.(RecordNode)
	if !ok {
		return
	}
	mux.HandleFunc("GET "+Prefix+"record", func(w http.ResponseWriter, r *http.Request) {
		rec, err := rn.FederationRecord(r.Context(), r.URL.Query().Get("name"))
		if err != nil {
			if errorsIsNotFound(err) || errors.Is(err, fsm.ErrInvalid) {
				httpError(w, http.StatusNotFound, err.Error())
				return
			}
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
}

var _ federation.Looker = (*Client)(nil)

// Lookup implements federation.Looker: what the node at addr binds name
// to; fsm.ErrNotFound when its cluster has no live artifact of the name.
func (c *Client) Lookup(ctx context.Context, addr, name string) (fsm.FeedRecord, error) {
	resp, err := c.do(ctx, http.MethodGet, addr, Prefix+"record?name="+url.QueryEscape(name), nil)
	if errors.Is(err, chunk.ErrNotFound) {
		return fsm.FeedRecord{}, fmt.Errorf("%w: %s at %s", fsm.ErrNotFound, name, addr)
	}
	if err != nil {
		return fsm.FeedRecord{}, fmt.Errorf("look %s up at %s: %w", name, addr, err)
	}
	defer resp.Body.Close()
	var rec fsm.FeedRecord
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return fsm.FeedRecord{}, fmt.Errorf("decode record of %s from %s: %w: %w", name, addr, cluster.ErrPeerUnreachable, err)
	}
	return rec, nil
}
