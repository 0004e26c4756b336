package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/pier-registry/pier/cluster/bundle"
)

// ImportResult is the answer of POST /api/v1/import (bundle.Result).
type ImportResult = bundle.Result

// Export streams a bundle of the artifacts under prefix created at or
// after since (zero: all) into w, and checks it on the way as an import
// would read it (every artifact's SHA-256, the manifest at the end): an
// error means w did not receive a whole, valid bundle. progress, when set,
// is called with the bytes received so far.
func (c *Client) Export(ctx context.Context, prefix string, since time.Time, w io.Writer, progress func(int64)) (bundle.Info, bundle.Manifest, error) {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	resp, srv, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/export", query: q})
	if err != nil {
		return bundle.Info{}, bundle.Manifest{}, fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return bundle.Info{}, bundle.Manifest{}, fmt.Errorf("export: from %s: %w", srv, readAPIError(resp))
	}
	cw := &progressWriter{w: w, progress: progress}
	info, m, err := bundle.Verify(io.TeeReader(resp.Body, cw), nil)
	if err == nil && cw.err != nil {
		err = cw.err
	}
	if err != nil {
		return info, m, fmt.Errorf("export from %s: %w", srv, err)
	}
	// The tar's end-of-archive blocks follow the manifest.
	if _, err := io.Copy(cw, resp.Body); err != nil {
		return info, m, fmt.Errorf("export from %s: %w", srv, err)
	}
	return info, m, nil
}

type progressWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
	err      error
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.progress != nil {
		p.progress(p.n)
	}
	if err != nil && p.err == nil {
		p.err = err
	}
	return n, err
}

// Import sends a bundle (body opens it, size is its length or -1) and
// returns what the cluster did with it. The result is filled also when the
// import stopped early (a truncated bundle), with the error; conflicts and
// failed entries are in the result, not the error (see Clean).
func (c *Client) Import(ctx context.Context, body func() (io.ReadCloser, error), size int64, progress func(int64)) (ImportResult, error) {
	resp, srv, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/import", body: body, size: size,
		header: http.Header{"Content-Type": {"application/x-tar"}}, progress: progress})
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	defer closeBody(resp)
	var res ImportResult
	if derr := json.NewDecoder(resp.Body).Decode(&res); derr != nil && resp.StatusCode == http.StatusOK {
		return res, fmt.Errorf("import: decode answer from %s: %w", srv, derr)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{Status: resp.StatusCode, Message: res.Error}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return res, fmt.Errorf("import: from %s: %w", srv, ae)
	}
	return res, nil
}
