package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// FederationConflict is a name bound to other bytes in another datacenter.
type FederationConflict struct {
	Name         string `json:"name"`
	LocalDigest  string `json:"local_digest"`
	RemoteDigest string `json:"remote_digest"`
}

// FederationRemote is how the answering node's cluster stands with one
// other datacenter.
type FederationRemote struct {
	Datacenter   string               `json:"datacenter"`
	Reachable    bool                 `json:"reachable"`
	LagArtifacts int                  `json:"lag_artifacts"`
	LagBytes     int64                `json:"lag_bytes"`
	LagSeconds   float64              `json:"lag_seconds"`
	Checkpoint   uint64               `json:"checkpoint"`
	Head         uint64               `json:"head"`
	Errors       int64                `json:"errors"`
	LastError    string               `json:"last_error,omitempty"`
	Copied       int64                `json:"copied"`
	Conflicts    []FederationConflict `json:"conflicts"`
}

// FederationStatus is the answer of GET /api/v1/federation/status.
type FederationStatus struct {
	Datacenter string             `json:"datacenter"`
	Remotes    []FederationRemote `json:"remotes"`
}

// ReplicationRule copies From's artifacts (under Prefix, with Tag) to To.
type ReplicationRule struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Prefix string `json:"prefix,omitempty"`
	Tag    string `json:"tag,omitempty"`
}

// FederationStatus reports every other datacenter as the answering node
// sees it.
func (c *Client) FederationStatus(ctx context.Context) (FederationStatus, error) {
	var s FederationStatus
	if err := c.getJSON(ctx, "/api/v1/federation/status", nil, &s); err != nil {
		return FederationStatus{}, fmt.Errorf("federation status: %w", err)
	}
	return s, nil
}

// FederationJoin asks the answering node to contact the WAN gossip
// addresses addrs of another datacenter's nodes.
func (c *Client) FederationJoin(ctx context.Context, addrs []string) error {
	return c.post(ctx, "/api/v1/federation/join", url.Values{"addr": {strings.Join(addrs, ",")}}, "federation join")
}

// ReplicationRules lists the rules stored in the answering node's cluster.
func (c *Client) ReplicationRules(ctx context.Context) ([]ReplicationRule, error) {
	var out struct {
		Rules []ReplicationRule `json:"rules"`
	}
	if err := c.getJSON(ctx, "/api/v1/federation/rules", nil, &out); err != nil {
		return nil, fmt.Errorf("replication rules: %w", err)
	}
	return out.Rules, nil
}

// SetReplicationRule adds (add true) or removes a rule.
func (c *Client) SetReplicationRule(ctx context.Context, r ReplicationRule, add bool) error {
	method := http.MethodDelete
	if add {
		method = http.MethodPost
	}
	q := url.Values{"from": {r.From}, "to": {r.To}, "prefix": {r.Prefix}, "tag": {r.Tag}}
	var out json.RawMessage
	if err := c.sendJSON(ctx, method, "/api/v1/federation/rules", q, nil, &out); err != nil {
		return fmt.Errorf("replication rule: %w", err)
	}
	return nil
}
