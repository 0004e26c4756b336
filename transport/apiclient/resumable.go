package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Resumable pushes: a body above the threshold goes up as a resumable
// upload (POST /api/v1/uploads, PATCH, PUT ?digest=) to the node that took
// the POST. When the connection drops, the client asks that node what it
// stored (HEAD) and sends the rest, so a multi-GB push that loses its
// connection at 90% goes on from 90%.
const (
	// DefaultResumableThreshold is the body size above which Push uses a
	// resumable upload.
	DefaultResumableThreshold = 64 << 20
	// DefaultResumeRetries bounds the failed attempts in a row (attempts
	// that stored nothing more) before a resumable push gives up.
	DefaultResumeRetries = 8
	// DefaultResumeBackoff is the wait after the first failed attempt; it
	// doubles after each further one, up to maxResumeBackoff.
	DefaultResumeBackoff = 500 * time.Millisecond
	maxResumeBackoff     = 8 * time.Second
)

const uploadsPath = "/api/v1/uploads"

// WithResumable sets the body size above which Push uses a resumable upload
// (negative: never), how many failed attempts in a row it tolerates, and
// the first backoff between them. A zero argument keeps its default.
func WithResumable(threshold int64, retries int, backoff time.Duration) Option {
	return func(c *config) {
		if threshold != 0 {
			c.resumeThreshold = threshold
		}
		if retries != 0 {
			c.resumeRetries = retries
		}
		if backoff != 0 {
			c.resumeBackoff = backoff
		}
	}
}

// resumable reports whether a push of size bytes goes as a resumable
// upload: it needs the size and the digest up front, since the upload is
// completed by its digest.
func (c *Client) resumable(size int64, opts PushOptions) bool {
	return c.resumeThreshold >= 0 && size > c.resumeThreshold && opts.SHA256 != ""
}

// uploadSession is one resumable upload on one node.
type uploadSession struct {
	server string // the node that holds it
	path   string // /api/v1/uploads/<id>
}

func (c *Client) pushResumable(ctx context.Context, name string, body func() (io.ReadCloser, error), size int64, opts PushOptions, h http.Header) (Artifact, bool, error) {
	if _, err := artifactPath("/artifacts/", name); err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	s, err := c.openUpload(ctx, name)
	if err != nil {
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	art, created, err := c.sendUpload(ctx, s, name, body, size, opts, h)
	if err != nil {
		// Nothing will resume it: give its bytes back now rather than at
		// the node's upload TTL. Best effort, even when ctx ended.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if resp, _, derr := c.send(dctx, s.server, request{method: http.MethodDelete, path: s.path}); derr == nil {
			closeBody(resp)
		}
		return Artifact{}, false, fmt.Errorf("push %s: %w", name, err)
	}
	return art, created, nil
}

// openUpload starts an upload on the first node that takes it.
func (c *Client) openUpload(ctx context.Context, name string) (uploadSession, error) {
	resp, srv, err := c.do(ctx, request{method: http.MethodPost, path: uploadsPath, query: url.Values{"name": {name}}})
	if err != nil {
		return uploadSession{}, fmt.Errorf("open an upload: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusAccepted {
		return uploadSession{}, fmt.Errorf("open an upload on %s: %w", srv, readAPIError(resp))
	}
	var v struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(resp, srv, &v); err != nil {
		return uploadSession{}, err
	}
	if v.ID == "" || strings.ContainsAny(v.ID, "/?#%") {
		return uploadSession{}, fmt.Errorf("open an upload on %s: bad upload id %q", srv, v.ID)
	}
	return uploadSession{server: srv, path: uploadsPath + "/" + v.ID}, nil
}

// sendUpload sends body from where the node's copy ends until it has all
// of it, then completes the upload.
func (c *Client) sendUpload(ctx context.Context, s uploadSession, name string, body func() (io.ReadCloser, error), size int64, opts PushOptions, h http.Header) (Artifact, bool, error) {
	var off int64
	failures := 0
	wait := c.resumeBackoff
	retry := func(cause error) error {
		failures++
		if failures > c.resumeRetries {
			return fmt.Errorf("gave up after %d failed attempts in a row at byte %d of %d: %w", failures, off, size, cause)
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		wait = min(2*wait, maxResumeBackoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	for off < size {
		stored, err := c.patchUpload(ctx, s, body, off, size, opts.Progress)
		if err == nil {
			off = stored
			continue
		}
		if ctx.Err() != nil || !retryable(err) {
			return Artifact{}, false, err
		}
		if err := retry(err); err != nil {
			return Artifact{}, false, err
		}
		stored, err = c.headUpload(ctx, s)
		if err != nil {
			if ctx.Err() != nil || !retryable(err) {
				return Artifact{}, false, err
			}
			continue // the next PATCH finds out again
		}
		if stored > off {
			// Progress: the budget of failures is for attempts that
			// store nothing.
			failures, wait = 0, c.resumeBackoff
		}
		off = stored
	}
	for {
		art, created, err := c.completeUpload(ctx, s, opts, h)
		if err == nil {
			return art, created, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			if failures > 0 && IsNotFound(err) {
				// An earlier PUT may have committed and lost its answer:
				// the upload is gone then, and the name holds our bytes.
				if a, ierr := c.Info(ctx, name, false); ierr == nil && strings.EqualFold(a.Digest, "sha256:"+opts.SHA256) {
					return a, true, nil
				}
			}
			return Artifact{}, false, err
		}
		if err := retry(err); err != nil {
			return Artifact{}, false, err
		}
	}
}

// retryable: the connection failed, the node was unavailable or busy with
// our previous attempt, or the offset moved; anything else is an answer
// about the request that another try would get again.
func retryable(err error) bool {
	var le *localError
	if errors.As(err, &le) {
		return false
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // the network
	}
	switch ae.Status {
	case http.StatusConflict:
		// Only the node's "upload busy" (our previous attempt has not
		// ended there yet), never a name bound to other bytes.
		return strings.Contains(ae.Message, "upload busy")
	case http.StatusRequestedRangeNotSatisfiable, http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// patchUpload sends body's bytes from off to the end and returns what the
// node stores then.
func (c *Client) patchUpload(ctx context.Context, s uploadSession, body func() (io.ReadCloser, error), off, size int64, progress func(int64)) (int64, error) {
	r := request{
		method: http.MethodPatch, path: s.path,
		header: http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/*", off, size-1)}},
		size:   size - off,
		body: func() (io.ReadCloser, error) {
			rc, err := body()
			if err != nil {
				return nil, err
			}
			if err := skip(rc, off); err != nil {
				rc.Close()
				return nil, err
			}
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(rc, size-off), rc}, nil
		},
	}
	if progress != nil {
		r.progress = func(sent int64) { progress(off + sent) }
	}
	resp, local, err := c.sendOnce(ctx, s.server, r)
	if err != nil {
		if local {
			return 0, &localError{err}
		}
		return 0, err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusAccepted {
		return 0, readAPIError(resp)
	}
	return uploadOffset(resp)
}

// localError is a failure to read the caller's own body: never retried.
type localError struct{ err error }

func (e *localError) Error() string { return "read the body: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func (c *Client) sendOnce(ctx context.Context, server string, r request) (*http.Response, bool, error) {
	resp, local, err := c.send(ctx, server, r)
	if err != nil {
		return nil, local, &attemptError{server: server, err: err}
	}
	return resp, false, nil
}

// skip moves rc past its first n bytes.
func skip(rc io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	if sk, ok := rc.(io.Seeker); ok {
		_, err := sk.Seek(n, io.SeekStart)
		return err
	}
	if _, err := io.CopyN(io.Discard, rc, n); err != nil {
		return fmt.Errorf("skip the %d bytes sent already: %w", n, err)
	}
	return nil
}

// headUpload asks the node how many bytes of the upload it stores.
func (c *Client) headUpload(ctx context.Context, s uploadSession) (int64, error) {
	resp, _, err := c.sendOnce(ctx, s.server, request{method: http.MethodHead, path: s.path})
	if err != nil {
		return 0, err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return 0, readAPIError(resp)
	}
	return uploadOffset(resp)
}

func uploadOffset(resp *http.Response) (int64, error) {
	v := resp.Header.Get("Upload-Offset")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("upload answer without a valid Upload-Offset (%q)", v)
	}
	return n, nil
}

// completeUpload turns the upload into the artifact.
func (c *Client) completeUpload(ctx context.Context, s uploadSession, opts PushOptions, h http.Header) (Artifact, bool, error) {
	resp, _, err := c.sendOnce(ctx, s.server, request{
		method: http.MethodPut, path: s.path, header: h,
		query: url.Values{"digest": {"sha256:" + strings.ToLower(opts.SHA256)}},
	})
	if err != nil {
		return Artifact{}, false, err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return Artifact{}, false, readAPIError(resp)
	}
	var art Artifact
	if err := decodeJSON(resp, s.server, &art); err != nil {
		return Artifact{}, false, err
	}
	return art, resp.StatusCode == http.StatusCreated, nil
}
