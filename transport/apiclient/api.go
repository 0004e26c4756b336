package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Artifact is the metadata the server keeps for one stored artifact.
type Artifact struct {
	Name    string            `json:"name"`
	Size    int64             `json:"size"`
	Digest  string            `json:"digest"` // "sha256:<hex>"
	Version string            `json:"version,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	// TagHistory is only filled by Info with history requested.
	TagHistory []TagEvent `json:"tag_history,omitempty"`
}

// TagEvent is one entry of an artifact's tag audit trail.
type TagEvent struct {
	Tag    string    `json:"tag"`
	Action string    `json:"action"` // "add" or "remove"
	Actor  string    `json:"actor"`
	Time   time.Time `json:"time"`
}

// Member is one node as seen by the cluster's membership layer.
type Member struct {
	ID         string `json:"id"`
	Datacenter string `json:"datacenter"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr"`
	State      string `json:"state"` // alive, suspect, dead or left
	Role       string `json:"role"`  // leader, voter, nonvoter or none
	// Status is the membership the cluster agreed: active, draining, left.
	Status string `json:"status"`
	// Usage figures, absent when the member did not answer.
	ShardFiles *int   `json:"shard_files,omitempty"`
	ShardBytes *int64 `json:"shard_bytes,omitempty"`
	DiskFree   *int64 `json:"disk_free,omitempty"`
}

// ClusterStatus is GET /api/v1/status: one node's view of the cluster.
type ClusterStatus struct {
	Node         string         `json:"node"`
	Leader       string         `json:"leader"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Nodes        int            `json:"nodes"`
	Artifacts    int            `json:"artifacts"`
	Objects      int            `json:"objects"`
	Tombstones   int            `json:"tombstones"`
	Bytes        int64          `json:"bytes"`
	Redundancy   map[string]int `json:"redundancy"`
	Draining     map[string]int `json:"draining,omitempty"`
	// Stats are the answering node's own counters (cluster.Stats).
	Stats map[string]int64 `json:"stats"`
	// Halted, when set, is "entry N: why": the node's state machine stopped
	// at a raft log entry its build cannot read; reads go on, writes fail.
	Halted string `json:"halted,omitempty"`
}

// MembersResponse is the cluster membership as reported by one node.
type MembersResponse struct {
	Leader  string   `json:"leader"`
	Members []Member `json:"members"`
}

// ListPage is one page of a listing, newest artifact first.
type ListPage struct {
	Artifacts []Artifact `json:"artifacts"`
	// NextPageToken is empty on the last page.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// ListOptions filters a listing. Zero values mean "no filter" and, for
// Limit, the server's default page size.
type ListOptions struct {
	Prefix string
	Tag    string
	Label  string // "key=value"
	// Labels are further "key=value" filters; every one must match.
	Labels []string
	// Glob matches whole names, * standing for any run of characters.
	Glob string
	// Digest and Commit match a value or its start; Version matches exactly.
	Digest, Version, Commit string
	// Order is "" (newest first) or "version" (highest version first).
	Order     string
	Limit     int
	PageToken string
}

// query is the listing's URL query: the parameters of GET
// /api/v1/artifacts and /api/v1/latest.
func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": o.Prefix, "tag": o.Tag, "label": o.Label, "page_token": o.PageToken,
		"glob": o.Glob, "digest": o.Digest, "version": o.Version, "commit": o.Commit, "order": o.Order} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, l := range o.Labels {
		q.Add("label", l)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// PushOptions is the metadata sent along with an artifact's bytes.
type PushOptions struct {
	Version string
	Commit  string
	Labels  map[string]string
	Tags    []string
	// SHA256 is the lowercase hex digest of the body. When set the server
	// refuses to store bytes that do not match it, which catches a file that
	// changed between hashing and uploading as well as corruption in transit.
	SHA256 string
	// Progress, if set, is called as the body is sent with the number of
	// bytes sent so far in the current attempt. It restarts from zero when
	// the push fails over to another server; a resumable push (a body
	// over the threshold, WithResumable) counts from what the node stored
	// already. It may be called from another goroutine and, briefly,
	// concurrently with a later attempt.
	Progress func(sent int64)
}

// ObjectInfo describes artifact bytes as announced by the response headers
// of Get and Head.
type ObjectInfo struct {
	Name string
	// Size is the Content-Length, or -1 when the server did not send one.
	Size int64
	// Digest is "sha256:<hex>" taken from the ETag, or empty when the ETag
	// is missing or of another form.
	Digest       string
	ETag         string
	LastModified time.Time
	ContentType  string
	// Server is the base URL of the node that answered.
	Server string
}

// Push stores the bytes produced by body under name with a PUT, or, for a
// body over the resumable threshold with opts.SHA256 set, as a resumable
// upload that goes on after a dropped connection (resumable.go). body is
// called once per attempt so the upload can be replayed against another node;
// size is the exact body length, or -1 if unknown (the body is then sent
// chunked). created is true when the server stored new bytes (201) and false
// when identical bytes were already stored under name (200). A name that
// already holds other bytes yields an error for which IsConflict is true.
func (c *Client) Push(ctx context.Context, name string, body func() (io.ReadCloser, error), size int64, opts PushOptions) (art Artifact, created bool, err error) {
	p, err := artifactPath("/artifacts/", name)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	h, err := pushHeaders(opts)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	if body == nil {
		body = BytesBody(nil)
		size = 0
	}
	if c.resumable(size, opts) {
		return c.pushResumable(ctx, name, body, size, opts, h)
	}
	resp, srv, err := c.do(ctx, request{
		method: http.MethodPut, path: p, header: h,
		body: body, size: size, progress: opts.Progress,
	})
	if err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return Artifact{}, false, fmt.Errorf("push %s to %s: %w", name, srv, readAPIError(resp))
	}
	if err := decodeJSON(resp, srv, &art); err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	return art, resp.StatusCode == http.StatusCreated, nil
}

func pushHeaders(o PushOptions) (http.Header, error) {
	h := http.Header{}
	set := func(key, v string) error {
		if err := checkHeaderValue(v); err != nil {
			return fmt.Errorf("%s %q: %w", key, v, err)
		}
		h.Add(key, v)
		return nil
	}
	if o.Version != "" {
		if err := set("X-Pier-Version", o.Version); err != nil {
			return nil, err
		}
	}
	if o.Commit != "" {
		if err := set("X-Pier-Commit", o.Commit); err != nil {
			return nil, err
		}
	}
	for k, v := range o.Labels {
		if k == "" || strings.Contains(k, "=") {
			return nil, fmt.Errorf("label key %q: must be non-empty and contain no '='", k)
		}
		if err := set("X-Pier-Label", k+"="+v); err != nil {
			return nil, err
		}
	}
	for _, t := range o.Tags {
		if t == "" {
			return nil, errors.New("empty tag")
		}
		if err := set("X-Pier-Tag", t); err != nil {
			return nil, err
		}
	}
	if o.SHA256 != "" {
		if err := set("X-Checksum-Sha256", strings.ToLower(o.SHA256)); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// checkHeaderValue rejects what net/http would refuse to send. Caught here,
// because a refusal inside the transport looks like a network error and would
// be retried on every server.
func checkHeaderValue(v string) error {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// Get streams the bytes of name. The caller must close the returned reader.
// Failover only happens until the response headers arrive; a transfer that
// breaks afterwards surfaces as a read error.
func (c *Client) Get(ctx context.Context, name string) (io.ReadCloser, ObjectInfo, error) {
	resp, info, err := c.fetchObject(ctx, http.MethodGet, name)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("get %s: %w", name, err)
	}
	return resp.Body, info, nil
}

// Head returns what Get would announce for name without transferring the
// bytes.
func (c *Client) Head(ctx context.Context, name string) (ObjectInfo, error) {
	resp, info, err := c.fetchObject(ctx, http.MethodHead, name)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", name, err)
	}
	resp.Body.Close()
	return info, nil
}

func (c *Client) fetchObject(ctx context.Context, method, name string) (*http.Response, ObjectInfo, error) {
	p, err := artifactPath("/artifacts/", name)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	resp, srv, err := c.do(ctx, request{method: method, path: p})
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, ObjectInfo{}, fmt.Errorf("from %s: %w", srv, readAPIError(resp))
	}
	info := ObjectInfo{
		Name:        name,
		Size:        resp.ContentLength,
		ETag:        resp.Header.Get("ETag"),
		ContentType: resp.Header.Get("Content-Type"),
		Server:      srv,
	}
	info.Digest = digestFromETag(info.ETag)
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			info.LastModified = t
		}
	}
	if method == http.MethodHead && info.Size < 0 {
		// A HEAD response's ContentLength is not filled from the header
		// by net/http when there is no body to frame.
		if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
			info.Size = n
		}
	}
	return resp, info, nil
}

// digestFromETag extracts "sha256:<hex>" from an ETag such as
// "sha256:<hex>" or W/"sha256:<hex>".
func digestFromETag(etag string) string {
	e := strings.TrimPrefix(strings.TrimSpace(etag), "W/")
	e = strings.Trim(e, `"`)
	hex, ok := strings.CutPrefix(e, "sha256:")
	if !ok || len(hex) != 64 {
		return ""
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return ""
		}
	}
	return "sha256:" + strings.ToLower(hex)
}

// Info returns the metadata of name; with history it also carries the tag
// audit trail. Deleted artifacts are reported as not found.
func (c *Client) Info(ctx context.Context, name string, history bool) (Artifact, error) {
	p, err := artifactPath("/api/v1/artifacts/", name)
	if err != nil {
		return Artifact{}, fmt.Errorf("info %s: %w", name, err)
	}
	var q url.Values
	if history {
		q = url.Values{"history": {"true"}}
	}
	var art Artifact
	if err := c.getJSON(ctx, p, q, &art); err != nil {
		return Artifact{}, fmt.Errorf("info %s: %w", name, err)
	}
	return art, nil
}

// List returns one page of artifacts matching opts, newest first.
func (c *Client) List(ctx context.Context, opts ListOptions) (ListPage, error) {
	var page ListPage
	if err := c.getJSON(ctx, "/api/v1/artifacts", opts.query(), &page); err != nil {
		return ListPage{}, fmt.Errorf("list artifacts: %w", err)
	}
	return page, nil
}

// ListAll iterates over every artifact matching opts, fetching further pages
// as the loop advances, starting at opts.PageToken. An error is yielded once,
// with a zero Artifact, and ends the iteration.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[Artifact, error] {
	return func(yield func(Artifact, error) bool) {
		seen := map[string]bool{}
		for {
			page, err := c.List(ctx, opts)
			if err != nil {
				yield(Artifact{}, err)
				return
			}
			for _, a := range page.Artifacts {
				if !yield(a, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			// A server that hands out a token twice would otherwise keep
			// this loop going forever.
			if seen[page.NextPageToken] {
				yield(Artifact{}, fmt.Errorf("list artifacts: server repeated page token %q", page.NextPageToken))
				return
			}
			seen[page.NextPageToken] = true
			opts.PageToken = page.NextPageToken
		}
	}
}

// Tag adds tag to name and returns the updated artifact.
func (c *Client) Tag(ctx context.Context, name, tag string) (Artifact, error) {
	art, err := c.tagOp(ctx, http.MethodPut, name, tag)
	if err != nil {
		return Artifact{}, fmt.Errorf("tag %s as %s: %w", name, tag, err)
	}
	return art, nil
}

// Untag removes tag from name and returns the updated artifact.
func (c *Client) Untag(ctx context.Context, name, tag string) (Artifact, error) {
	art, err := c.tagOp(ctx, http.MethodDelete, name, tag)
	if err != nil {
		return Artifact{}, fmt.Errorf("untag %s from %s: %w", tag, name, err)
	}
	return art, nil
}

func (c *Client) tagOp(ctx context.Context, method, name, tag string) (Artifact, error) {
	if tag == "" {
		return Artifact{}, errors.New("empty tag")
	}
	if _, err := artifactPath("/", name); err != nil {
		return Artifact{}, err
	}
	resp, srv, err := c.do(ctx, request{
		method: method,
		path:   "/api/v1/tags/" + url.PathEscape(tag),
		query:  url.Values{"name": {name}},
	})
	if err != nil {
		return Artifact{}, err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return Artifact{}, fmt.Errorf("from %s: %w", srv, readAPIError(resp))
	}
	var art Artifact
	return art, decodeJSON(resp, srv, &art)
}

// Delete removes name. The name stays bound to its digest as a tombstone, so
// it can never be reused for different bytes.
func (c *Client) Delete(ctx context.Context, name string) error {
	p, err := artifactPath("/api/v1/artifacts/", name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	resp, srv, err := c.do(ctx, request{method: http.MethodDelete, path: p})
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delete %s on %s: %w", name, srv, readAPIError(resp))
	}
	return nil
}

// Latest returns the name of the newest artifact matching prefix and tag.
// The server answers with a redirect to the bytes; the redirect is not
// followed, only its Location is read, so no bytes are transferred.
func (c *Client) Latest(ctx context.Context, prefix, tag string) (string, error) {
	return c.LatestMatching(ctx, ListOptions{Prefix: prefix, Tag: tag})
}

// LatestMatching returns the name of the first artifact a listing with
// opts would return (newest, or highest version with Order "version");
// Limit and PageToken are ignored.
func (c *Client) LatestMatching(ctx context.Context, opts ListOptions) (string, error) {
	opts.Limit, opts.PageToken = 0, ""
	resp, srv, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/latest", query: opts.query()})
	if err != nil {
		return "", fmt.Errorf("latest: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return "", fmt.Errorf("latest from %s: %w", srv, readAPIError(resp))
	}
	name, err := nameFromLocation(srv, resp.Header.Get("Location"))
	if err != nil {
		return "", fmt.Errorf("latest from %s: %w", srv, err)
	}
	return name, nil
}

// nameFromLocation recovers the artifact name from a redirect to
// /artifacts/{name}, relative or absolute, and with or without the base
// URL's path prefix.
func nameFromLocation(server, loc string) (string, error) {
	if loc == "" {
		return "", errors.New("redirect without Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad Location %q: %w", loc, err)
	}
	p := u.Path
	if bu, err := url.Parse(server); err == nil && bu.Path != "" {
		if rest, ok := strings.CutPrefix(p, bu.Path); ok && strings.HasPrefix(rest, "/artifacts/") {
			p = rest
		}
	}
	name, ok := strings.CutPrefix(p, "/artifacts/")
	if !ok || name == "" {
		return "", fmt.Errorf("unexpected Location %q", loc)
	}
	return name, nil
}

// Members returns the cluster membership as seen by the answering node.
func (c *Client) Members(ctx context.Context) (MembersResponse, error) {
	var m MembersResponse
	if err := c.getJSON(ctx, "/api/v1/cluster/members", nil, &m); err != nil {
		return MembersResponse{}, fmt.Errorf("cluster members: %w", err)
	}
	return m, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, srv, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("from %s: %w", srv, readAPIError(resp))
	}
	return decodeJSON(resp, srv, v)
}

// artifactPath builds the escaped URL path for name under prefix. Empty, "."
// and ".." segments are refused here because Go's server would answer them
// with a redirect to a cleaned path, which reads as a confusing error.
func artifactPath(prefix, name string) (string, error) {
	if name == "" {
		return "", errors.New("empty artifact name")
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("invalid artifact name %q: empty, '.' or '..' path segment", name)
		}
		segs[i] = url.PathEscape(s)
	}
	return prefix + strings.Join(segs, "/"), nil
}

// Status returns the answering node's view of the cluster.
func (c *Client) Status(ctx context.Context) (ClusterStatus, error) {
	var s ClusterStatus
	if err := c.getJSON(ctx, "/api/v1/status", nil, &s); err != nil {
		return ClusterStatus{}, fmt.Errorf("cluster status: %w", err)
	}
	return s, nil
}

// Leave asks the answering node to drain and leave the cluster. Use a
// client with exactly one server: failing over would make another node
// leave.
func (c *Client) Leave(ctx context.Context) error {
	return c.post(ctx, "/api/v1/cluster/leave", nil, "leave")
}

// Remove evicts a dead node from the cluster.
func (c *Client) Remove(ctx context.Context, id string) error {
	return c.post(ctx, "/api/v1/cluster/remove", url.Values{"id": {id}}, "remove "+id)
}

// Join asks the answering node to join the cluster reachable at the gossip
// addresses addrs.
func (c *Client) Join(ctx context.Context, addrs []string) error {
	return c.post(ctx, "/api/v1/cluster/join", url.Values{"addr": {strings.Join(addrs, ",")}}, "join")
}

func (c *Client) post(ctx context.Context, path string, q url.Values, what string) error {
	resp, srv, err := c.do(ctx, request{method: http.MethodPost, path: path, query: q})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer closeBody(resp)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: from %s: %w", what, srv, readAPIError(resp))
	}
	return nil
}
