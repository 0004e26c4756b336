// Package apiclient is the Go client for a Pier cluster's public HTTP API.
//
// A Client is given the addresses of several nodes. Any node can serve any
// request (writes are forwarded to the leader on the server side), so the
// client's only job is to find one that answers: it tries the nodes in order,
// moves on when a node cannot be reached or reports itself unavailable, and
// starts from the last node that answered next time. Answers that are about
// the request itself (4xx, or 500) are never retried elsewhere, because every
// node would say the same and a retry could only hide the problem.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// DefaultDialTimeout bounds how long a dead or firewalled node can stall
	// a request before the client moves on to the next one.
	DefaultDialTimeout = 5 * time.Second

	// DefaultResponseHeaderTimeout bounds the wait between sending the last
	// byte of a request and receiving the status line. It is generous because
	// after a large upload the server still has to verify, chunk and commit
	// the artifact through consensus before it can answer.
	DefaultResponseHeaderTimeout = 60 * time.Second

	// expectContinueThreshold is the body size above which a push asks the
	// server for permission before sending: a 409, a "no leader" 503 or an
	// "already stored" answer then costs a round trip instead of the whole
	// upload.
	expectContinueThreshold = 1 << 20

	// maxErrorBody caps how much of an error response is read, so a proxy
	// answering with a huge HTML page cannot balloon memory.
	maxErrorBody = 64 << 10
)

// Client talks to a Pier cluster through one or more of its nodes. It is safe
// for concurrent use.
type Client struct {
	servers   []string // base URLs without trailing slash
	hc        *http.Client
	userAgent string
	token     string
	// Resumable pushes (resumable.go).
	resumeThreshold int64
	resumeRetries   int
	resumeBackoff   time.Duration

	// preferred is the index of the last server that answered; requests start
	// there so a dead first node costs a failed dial once, not on every call.
	preferred atomic.Int64
}

// Option configures a Client in New.
type Option func(*config)

type config struct {
	hc            *http.Client
	dialTimeout   time.Duration
	headerTimeout time.Duration
	userAgent     string
	roots         *x509.CertPool
	token         string

	resumeThreshold int64
	resumeRetries   int
	resumeBackoff   time.Duration
}

// WithHTTPClient makes the Client send requests through hc instead of its own
// transport; the dial and response-header timeout options are then ignored,
// since they configure the Client's own transport. hc is copied and the copy
// never follows redirects, because Latest must see the 302 itself.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.hc = hc }
}

// WithDialTimeout overrides DefaultDialTimeout.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) { c.dialTimeout = d }
}

// WithResponseHeaderTimeout overrides DefaultResponseHeaderTimeout. A node
// that accepts a connection but does not answer within d is treated like an
// unreachable one and the next node is tried.
func WithResponseHeaderTimeout(d time.Duration) Option {
	return func(c *config) { c.headerTimeout = d }
}

// WithToken sends secret as a bearer token with every request.
func WithToken(secret string) Option {
	return func(c *config) { c.token = secret }
}

// WithRootCAs makes the Client's own transport trust the certificate
// authorities in pool for https:// servers instead of the system's.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) { c.roots = pool }
}

// WithUserAgent sets the User-Agent header, which shows up in server logs and
// helps tell CI pushes from humans.
func WithUserAgent(ua string) Option {
	return func(c *config) { c.userAgent = ua }
}

// New returns a Client for the given nodes, tried in the given order. Each
// entry is either host:port (plain HTTP is assumed) or a base URL such as
// https://pier.example.com/prefix.
func New(servers []string, opts ...Option) (*Client, error) {
	if len(servers) == 0 {
		return nil, errors.New("apiclient: no servers given")
	}
	cfg := config{
		dialTimeout:   DefaultDialTimeout,
		headerTimeout: DefaultResponseHeaderTimeout,
		userAgent:     "pier-apiclient",

		resumeThreshold: DefaultResumableThreshold,
		resumeRetries:   DefaultResumeRetries,
		resumeBackoff:   DefaultResumeBackoff,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c := &Client{userAgent: cfg.userAgent, token: cfg.token,
		resumeThreshold: cfg.resumeThreshold, resumeRetries: cfg.resumeRetries, resumeBackoff: cfg.resumeBackoff}
	for _, s := range servers {
		base, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		c.servers = append(c.servers, base)
	}

	var hc http.Client
	if cfg.hc != nil {
		hc = *cfg.hc
	} else {
		t := newTransport(cfg.dialTimeout, cfg.headerTimeout)
		if cfg.roots != nil {
			t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.roots}
		}
		hc.Transport = t
		// No hc.Timeout on purpose: it would also cap reading the body, and
		// artifacts can take minutes to transfer. Callers bound whole
		// operations with their context instead.
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc
	return c, nil
}

func newTransport(dialTimeout, headerTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	t.ResponseHeaderTimeout = headerTimeout
	t.TLSHandshakeTimeout = dialTimeout + 5*time.Second
	t.ExpectContinueTimeout = time.Second
	// Proxies from the environment would route cluster-internal addresses
	// through a corporate proxy that typically cannot reach them.
	t.Proxy = nil
	return t
}

func parseServer(s string) (string, error) {
	raw := strings.TrimSpace(s)
	if raw == "" {
		return "", errors.New("apiclient: empty server address")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("apiclient: server %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("apiclient: server %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("apiclient: server %q: want host:port or a base URL without query, fragment or credentials", s)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// Servers returns the normalised base URLs in the order they are tried.
func (c *Client) Servers() []string {
	return append([]string(nil), c.servers...)
}

// APIError is an answer from a server that the client does not treat as
// success. Status is the HTTP status; Message is the server's "error" field,
// or the start of the body when the answer was not Pier's JSON (for example
// from a proxy in front of the node).
type APIError struct {
	Status  int
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// IsNotFound reports whether err, or an error it wraps, is a 404 from the
// server.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err, or an error it wraps, is a 409 from the
// server, meaning the name is already bound to different bytes.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsUnavailable reports whether err means that no server could be reached or
// every server reported itself unavailable.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// UnavailableError is returned when every server failed at the connection
// level or answered 502, 503 or 504. Attempts holds one error per server, in
// the order tried, so a caller can tell a cluster that is down from one that
// is up but has no leader (503 with a message).
type UnavailableError struct {
	Attempts []error
}

// Error implements error.
func (e *UnavailableError) Error() string {
	if len(e.Attempts) == 1 {
		return e.Attempts[0].Error()
	}
	msgs := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		msgs[i] = a.Error()
	}
	return fmt.Sprintf("all %d servers failed: %s", len(e.Attempts), strings.Join(msgs, "; "))
}

// Unwrap exposes the per-server errors to errors.Is and errors.As, e.g. to
// find the *APIError of a 503.
func (e *UnavailableError) Unwrap() []error { return e.Attempts }

// attemptError names the server an attempt went to. The transport's
// *url.Error already repeats the full URL, so only its cause is printed.
type attemptError struct {
	server string
	err    error
}

func (e *attemptError) Error() string {
	cause := e.err
	var ue *url.Error
	if errors.As(cause, &ue) {
		cause = ue.Err
	}
	return e.server + ": " + cause.Error()
}

func (e *attemptError) Unwrap() error { return e.err }

// request describes one API call independently of the server it goes to, so
// it can be replayed against the next server.
type request struct {
	method string
	path   string // already escaped, starting with "/"
	query  url.Values
	header http.Header
	// body opens a fresh copy of the request body for each attempt; nil
	// means no body.
	body     func() (io.ReadCloser, error)
	size     int64
	progress func(sent int64)
}

// do sends r to the servers in turn, starting with the last one that
// answered. It returns the first response that is not a failover reason,
// together with the server that produced it.
func (c *Client) do(ctx context.Context, r request) (*http.Response, string, error) {
	n := len(c.servers)
	start := int(c.preferred.Load())
	var attempts []error
	for i := range n {
		idx := (start + i) % n
		base := c.servers[idx]
		resp, local, err := c.send(ctx, base, r)
		if err != nil {
			// Neither a cancelled caller nor a local file that cannot be read
			// is something another server would fix.
			if ctx.Err() != nil || local {
				return nil, base, err
			}
			attempts = append(attempts, &attemptError{server: base, err: err})
			continue
		}
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			attempts = append(attempts, &attemptError{server: base, err: readAPIError(resp)})
			continue
		}
		c.preferred.Store(int64(idx))
		return resp, base, nil
	}
	return nil, "", &UnavailableError{Attempts: attempts}
}

// send makes one attempt against one server. local reports that the failure
// came from reading the caller's body rather than from the network.
func (c *Client) send(ctx context.Context, base string, r request) (resp *http.Response, local bool, err error) {
	u := base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var (
		state countState
		body  io.ReadCloser
	)
	if r.body != nil {
		body, err = r.body()
		if err != nil {
			return nil, true, fmt.Errorf("open body: %w", err)
		}
		body = &countingBody{rc: body, state: &state, progress: r.progress}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, true, err
	}
	switch {
	case r.body == nil:
	case r.size == 0:
		body.Close()
		req.Body = http.NoBody
		req.ContentLength = 0
	case r.size > 0:
		req.ContentLength = r.size
		if r.size >= expectContinueThreshold {
			req.Header.Set("Expect", "100-continue")
		}
	default:
		req.ContentLength = -1 // chunked
	}
	if r.body != nil && r.size != 0 {
		// Lets the transport itself replay the body when a kept-alive
		// connection turns out to be dead before anything was sent.
		req.GetBody = func() (io.ReadCloser, error) {
			rc, err := r.body()
			if err != nil {
				return nil, err
			}
			return &countingBody{rc: rc, state: &state, progress: r.progress}, nil
		}
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err = c.hc.Do(req)
	if err != nil {
		return nil, state.readFailed.Load(), err
	}
	return resp, false, nil
}

// countState is shared by the bodies of one attempt (the transport may
// reopen the body through GetBody) so a local read error is noticed whichever
// copy hit it.
type countState struct {
	readFailed atomic.Bool
}

// countingBody reports upload progress and remembers local read errors,
// which must not trigger a failover: the next server would read the same
// broken file.
type countingBody struct {
	rc       io.ReadCloser
	state    *countState
	progress func(int64)
	n        int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if n > 0 && b.progress != nil {
		b.progress(b.n)
	}
	if err != nil && err != io.EOF {
		b.state.readFailed.Store(true)
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// readAPIError turns a non-success response into an *APIError and closes
// its body.
func readAPIError(resp *http.Response) *APIError {
	defer closeBody(resp)
	ae := &APIError{Status: resp.StatusCode}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return ae
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != "" {
		ae.Message = body.Error
		return ae
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	ae.Message = msg
	return ae
}

// closeBody drains a little of what is left before closing so the
// connection can be reused for the next request.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

func decodeJSON(resp *http.Response, server string, v any) error {
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode response from %s: %w", server, err)
	}
	return nil
}

// FileBody returns a body function for Push that opens path anew on every
// attempt, so a failed upload can be replayed against another node without
// holding the file in memory.
func FileBody(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// BytesBody returns a body function for Push that replays b on every
// attempt.
func BytesBody(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
