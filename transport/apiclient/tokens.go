package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Token is an access token as the API shows it. Secret is set only in the
// answer that created or rotated it.
type Token struct {
	Name      string     `json:"name"`
	Owner     string     `json:"owner"`
	Scopes    []string   `json:"scopes"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires"`
	Rotated   *time.Time `json:"rotated,omitempty"`
	GraceEnds *time.Time `json:"grace_ends,omitempty"`
	Secret    string     `json:"secret,omitempty"`
}

// TokenRequest asks for a new token. TTL is a Go duration or days ("90d");
// empty: until revoked.
type TokenRequest struct {
	Name   string   `json:"name"`
	Owner  string   `json:"owner,omitempty"`
	Scopes []string `json:"scopes"`
	TTL    string   `json:"ttl,omitempty"`
}

// Access is the cluster's access policy.
type Access struct {
	AnonymousPull []string `json:"anonymous_pull"`
}

// CreateToken makes a token; the answer holds its secret, shown only now.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (Token, error) {
	var t Token
	err := c.sendJSON(ctx, http.MethodPost, "/api/v1/tokens", nil, req, &t)
	if err != nil {
		return Token{}, fmt.Errorf("create token %s: %w", req.Name, err)
	}
	return t, nil
}

// Tokens lists the cluster's tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	if err := c.getJSON(ctx, "/api/v1/tokens", nil, &out); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out.Tokens, nil
}

// RotateToken gives a token a new secret; the old one works on for grace
// (a Go duration or days; empty: not at all).
func (c *Client) RotateToken(ctx context.Context, name, grace string) (Token, error) {
	var t Token
	q := url.Values{}
	if grace != "" {
		q.Set("grace", grace)
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/tokens/"+url.PathEscape(name)+"/rotate", q, nil, &t); err != nil {
		return Token{}, fmt.Errorf("rotate token %s: %w", name, err)
	}
	return t, nil
}

// RevokeToken deletes a token on every node.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	if err := c.sendJSON(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil, nil, nil); err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	return nil
}

// Access returns the cluster's access policy.
func (c *Client) Access(ctx context.Context) (Access, error) {
	var a Access
	if err := c.getJSON(ctx, "/api/v1/access", nil, &a); err != nil {
		return Access{}, fmt.Errorf("access policy: %w", err)
	}
	return a, nil
}

// SetAccess replaces the cluster's access policy.
func (c *Client) SetAccess(ctx context.Context, a Access) (Access, error) {
	var out Access
	if err := c.sendJSON(ctx, http.MethodPut, "/api/v1/access", nil, a, &out); err != nil {
		return Access{}, fmt.Errorf("set access policy: %w", err)
	}
	return out, nil
}

// sendJSON sends in (unless nil) as a JSON body and decodes a 2xx answer
// into out (unless nil).
func (c *Client) sendJSON(ctx context.Context, method, path string, q url.Values, in, out any) error {
	r := request{method: method, path: path, query: q}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.body = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.size = int64(len(b))
		r.header = http.Header{"Content-Type": {"application/json"}}
	}
	resp, srv, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("from %s: %w", srv, readAPIError(resp))
	}
	if out == nil {
		return nil
	}
	return decodeJSON(resp, srv, out)
}

// RetentionPolicy is a retention policy as the API shows it. MaxAge is a Go
// duration or days ("90d").
type RetentionPolicy struct {
	Prefix      string   `json:"prefix"`
	KeepLast    int      `json:"keep_last,omitempty"`
	MaxAge      string   `json:"max_age,omitempty"`
	ProtectTags []string `json:"protect_tags,omitempty"`
	// Images makes the policy one of OCI images, per repository, on a
	// prefix under _oci/; UntaggedMaxAge and BlobGrace apply only to it.
	Images         bool   `json:"images,omitempty"`
	UntaggedMaxAge string `json:"untagged_max_age,omitempty"`
	BlobGrace      string `json:"blob_grace,omitempty"`
}

// RetentionDeletion is an artifact a retention run deleted (or would).
type RetentionDeletion struct {
	Name    string    `json:"name"`
	Digest  string    `json:"digest"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	Policy  string    `json:"policy"`
	Reason  string    `json:"reason"`
}

// RetentionPolicies lists the cluster's retention policies.
func (c *Client) RetentionPolicies(ctx context.Context) ([]RetentionPolicy, error) {
	var out struct {
		Policies []RetentionPolicy `json:"policies"`
	}
	if err := c.getJSON(ctx, "/api/v1/retention", nil, &out); err != nil {
		return nil, fmt.Errorf("retention policies: %w", err)
	}
	return out.Policies, nil
}

// SetRetention adds or replaces the policy of p.Prefix.
func (c *Client) SetRetention(ctx context.Context, p RetentionPolicy) error {
	if err := c.sendJSON(ctx, http.MethodPut, "/api/v1/retention", nil, p, nil); err != nil {
		return fmt.Errorf("set retention policy %q: %w", p.Prefix, err)
	}
	return nil
}

// RemoveRetention drops the policy of prefix.
func (c *Client) RemoveRetention(ctx context.Context, prefix string) error {
	if err := c.sendJSON(ctx, http.MethodDelete, "/api/v1/retention", url.Values{"prefix": {prefix}}, nil, nil); err != nil {
		return fmt.Errorf("remove retention policy %q: %w", prefix, err)
	}
	return nil
}

// RunRetention applies the policies now, or with dryRun says what they
// would delete; candidate, for a dry run, stands in for its prefix's policy.
func (c *Client) RunRetention(ctx context.Context, dryRun bool, candidate *RetentionPolicy) ([]RetentionDeletion, error) {
	var out struct {
		Deleted []RetentionDeletion `json:"deleted"`
	}
	q := url.Values{"dry_run": {fmt.Sprint(dryRun)}}
	var body any
	if candidate != nil {
		body = candidate
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/retention/run", q, body, &out); err != nil {
		return nil, fmt.Errorf("retention run: %w", err)
	}
	return out.Deleted, nil
}

// Quota bounds the artifacts under a prefix; Used* is their usage now.
type Quota struct {
	Prefix    string `json:"prefix"`
	MaxBytes  int64  `json:"max_bytes,omitempty"`
	MaxCount  int64  `json:"max_count,omitempty"`
	UsedBytes int64  `json:"used_bytes"`
	UsedCount int64  `json:"used_count"`
}

// Quotas lists the quotas with their usage.
func (c *Client) Quotas(ctx context.Context) ([]Quota, error) {
	var out struct {
		Quotas []Quota `json:"quotas"`
	}
	if err := c.getJSON(ctx, "/api/v1/quotas", nil, &out); err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	return out.Quotas, nil
}

// SetQuota adds or replaces the quota of q.Prefix.
func (c *Client) SetQuota(ctx context.Context, q Quota) error {
	if err := c.sendJSON(ctx, http.MethodPut, "/api/v1/quotas", nil, q, nil); err != nil {
		return fmt.Errorf("set quota %q: %w", q.Prefix, err)
	}
	return nil
}

// RemoveQuota drops the quota of prefix.
func (c *Client) RemoveQuota(ctx context.Context, prefix string) error {
	if err := c.sendJSON(ctx, http.MethodDelete, "/api/v1/quotas", url.Values{"prefix": {prefix}}, nil, nil); err != nil {
		return fmt.Errorf("remove quota %q: %w", prefix, err)
	}
	return nil
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Source  string    `json:"source,omitempty"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	Outcome string    `json:"outcome"`
}

// AuditQuery selects audit entries: after Since (a seq), by actor and
// action, at most Limit.
type AuditQuery struct {
	Since         uint64
	Actor, Action string
	Limit         int
}

// Audit reads the audit log, oldest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	v := url.Values{}
	if q.Since > 0 {
		v.Set("since", fmt.Sprint(q.Since))
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	}
	var out struct {
		Entries []AuditEntry `json:"entries"`
	}
	if err := c.getJSON(ctx, "/api/v1/audit", v, &out); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out.Entries, nil
}
