package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/pier-registry/pier/testing/invariants"
	"github.com/pier-registry/pier/transport/apiclient"
)

// The in-process partition tests record every operation they send, as the
// chaos suite does, and judge the history with the same checks (package
// invariants).

// History vocabulary of package invariants, shared with the chaos suite.
type (
	op      = invariants.Op
	history = invariants.History
)

// driver sends the recorded operations to the nodes' public API through
// the cluster's network as the test client.
type driver struct {
	c  *Cluster
	h  *history
	hc *http.Client
}

// opTimeout bounds each operation: a paused node never answers.
const opTimeout = 10 * time.Second

func newDriver(c *Cluster) *driver {
	return &driver{c: c, h: invariants.NewHistory(), hc: c.HTTPClient(opTimeout)}
}

func (d *driver) push(ctx context.Context, client, node int, name string, body []byte) op {
	sum := sha256.Sum256(body)
	o := op{Kind: invariants.KindPush, Client: client, Node: d.c.Nodes[node].ID, Name: name, Size: int64(len(body)),
		Sent: "sha256:" + hex.EncodeToString(sum[:]), Start: d.h.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, d.c.Nodes[node].URL+"/artifacts/"+name, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("X-Checksum-Sha256", hex.EncodeToString(sum[:]))
		var art apiclient.Artifact
		o.Status, err = d.call(req, &art)
		o.Digest = art.Digest
	}
	o.End = d.h.Now()
	o.Outcome, o.Err = classify(o.Status, err)
	return d.h.Add(o)
}

func (d *driver) pull(ctx context.Context, kind invariants.Kind, phase string, client, node int, name string) op {
	o := op{Kind: kind, Phase: phase, Client: client, Node: d.c.Nodes[node].ID, Name: name, Start: d.h.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.c.Nodes[node].URL+"/artifacts/"+name, nil)
	var resp *http.Response
	if err == nil {
		resp, err = d.hc.Do(req)
	}
	if err == nil {
		o.Status = resp.StatusCode
		if resp.StatusCode == http.StatusOK {
			h := sha256.New()
			var n int64
			n, err = io.Copy(h, resp.Body)
			o.Size, o.Digest = n, "sha256:"+hex.EncodeToString(h.Sum(nil))
			o.Announced = unquote(resp.Header.Get("ETag"))
			o.Complete = err == nil && (resp.ContentLength < 0 || n == resp.ContentLength)
			if err == nil && !o.Complete {
				err = fmt.Errorf("read %d of %d announced bytes", n, resp.ContentLength)
			}
			if err != nil {
				err = fmt.Errorf("%w: %w", errTruncated, err)
			}
		} else {
			err = apiError(resp)
		}
		resp.Body.Close()
	}
	o.End = d.h.Now()
	o.Outcome, o.Err = classify(o.Status, err)
	return d.h.Add(o)
}

// meta sends a tag, an untag or an info (the artifact's metadata, with
// its tags) and records the tag set answered.
func (d *driver) meta(ctx context.Context, kind invariants.Kind, client, node int, name, tag string) op {
	o := op{Kind: kind, Client: client, Node: d.c.Nodes[node].ID, Name: name, Tag: tag, Start: d.h.Now()}
	method, path := http.MethodGet, "/api/v1/artifacts/"+name
	switch kind {
	case invariants.KindTag:
		method, path = http.MethodPut, "/api/v1/tags/"+url.PathEscape(tag)+"?name="+url.QueryEscape(name)
	case invariants.KindUntag:
		method, path = http.MethodDelete, "/api/v1/tags/"+url.PathEscape(tag)+"?name="+url.QueryEscape(name)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.c.Nodes[node].URL+path, nil)
	if err == nil {
		var art apiclient.Artifact
		o.Status, err = d.call(req, &art)
		o.Digest, o.Tags = art.Digest, art.Tags
		if o.Tags == nil {
			o.Tags = []string{}
		}
	}
	o.End = d.h.Now()
	o.Outcome, o.Err = classify(o.Status, err)
	return d.h.Add(o)
}

// call sends req and decodes a 200 or 201 answer into v.
func (d *driver) call(req *http.Request, v any) (int, error) {
	resp, err := d.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, apiError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: decode answer: %w", errTruncated, err)
	}
	return resp.StatusCode, nil
}

var errTruncated = errors.New("answer cut short")

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
}

// classify sorts an answer as the chaos suite does: a 4xx other than 408
// and 429, or a refused connection, certainly did nothing; a 5xx, a
// timeout or a connection lost midway may have done anything.
func classify(status int, err error) (invariants.Outcome, string) {
	if err == nil {
		return invariants.OK, ""
	}
	var ne net.Error
	switch {
	case status >= 400 && status < 500 && status != 408 && status != 429:
		return invariants.Fail, err.Error()
	case status == 0 && errors.Is(err, syscall.ECONNREFUSED):
		return invariants.Fail, err.Error()
	case status == 0 && (errors.As(err, &ne) && ne.Timeout()):
		return invariants.Unknown, "timeout: " + err.Error()
	}
	return invariants.Unknown, err.Error()
}

func unquote(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}
