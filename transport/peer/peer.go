// Package peer is the node-to-node service: forwarded raft writes, read
// barriers and object reads. It shares the node's HTTP port with the public
// API but is served only over mutual TLS under the cluster key (see
// transport/clustertls): a caller without the key never completes a
// handshake, so it can call nothing.
package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pier-registry/pier/chunk"
	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Prefix is where the peer service is mounted.
const Prefix = "/internal/v1/"

// maxCommand bounds a forwarded batch of raft commands: a follower
// forwards at most 4 MiB of commands at once.
const maxCommand = 8 << 20

// Node is what the peer service needs from a node.
type Node interface {
	ApplyForwarded(ctx context.Context, batch []byte) ([]fsm.Result, error)
	LeaderReadIndex(ctx context.Context) (uint64, error)
	ReceiveShard(ctx context.Context, id string, index int, parity bool, r io.Reader) (int64, error)
	ReceivePacked(shards []cluster.PackedShard) error
	OpenShard(ctx context.Context, id string, index int, off, n int64, after uint64) (io.ReadCloser, error)
	RemoveShard(id string, index int) error
	Stats() cluster.Stats
}

// Handler serves the peer service for node. It answers only requests that
// arrived over TLS with a verified client certificate: the listener
// enforces that, and the check here keeps a wiring mistake from exposing
// the service.
func Handler(node Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Prefix+"apply", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxCommand+1))
		if err != nil || len(b) > maxCommand {
			httpError(w, http.StatusBadRequest, "unreadable or oversized batch of commands")
			return
		}
		res, err := node.ApplyForwarded(r.Context(), b)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST "+Prefix+"readindex", func(w http.ResponseWriter, r *http.Request) {
		idx, err := node.LeaderReadIndex(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
	})
	mux.HandleFunc("GET "+Prefix+"ping", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+Prefix+"stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, node.Stats())
	})
	shard := func(r *http.Request) (string, int, error) {
		i, err := strconv.Atoi(r.PathValue("index"))
		if err != nil {
			return "", 0, fmt.Errorf("%w: shard index %q", fsm.ErrInvalid, r.PathValue("index"))
		}
		return r.PathValue("id"), i, nil
	}
	mux.HandleFunc("PUT "+Prefix+"shards/{id}/{index}", func(w http.ResponseWriter, r *http.Request) {
		id, i, err := shard(r)
		if err == nil {
			_, err = node.ReceiveShard(r.Context(), id, i, r.URL.Query().Get("parity") == "1", r.Body)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+Prefix+"packed", func(w http.ResponseWriter, r *http.Request) {
		shards, release, err := readPacked(r.Body, r.ContentLength)
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		defer release()
		if err := node.ReceivePacked(shards); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+Prefix+"shards/{id}/{index}", func(w http.ResponseWriter, r *http.Request) {
		id, i, err := shard(r)
		if err != nil {
			writeErr(w, err)
			return
		}
		off, err1 := strconv.ParseInt(r.URL.Query().Get("off"), 10, 64)
		n, err2 := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		var after uint64
		var err3 error
		if a := r.URL.Query().Get("after"); a != "" {
			after, err3 = strconv.ParseUint(a, 10, 64)
		}
		if err1 != nil || err2 != nil || err3 != nil {
			httpError(w, http.StatusBadRequest, "off and n are required integers, after an optional one")
			return
		}
		rc, err := node.OpenShard(r.Context(), id, i, off, n, after)
		if err != nil {
			writeErr(w, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusOK)
		bp := shardBufs.Get().(*[]byte)
		defer shardBufs.Put(bp)
		// Not io.Copy: http's ReadFrom would read the file 32 KiB at a time.
		_, _ = io.CopyBuffer(struct{ io.Writer }{w}, rc, *bp)
	})
	mux.HandleFunc("DELETE "+Prefix+"shards/{id}/{index}", func(w http.ResponseWriter, r *http.Request) {
		id, i, err := shard(r)
		if err == nil {
			err = node.RemoveShard(id, i)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	routeFederation(mux, node)
	routeAntiEntropy(mux, node)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			httpError(w, http.StatusForbidden, "the peer service answers only nodes holding the cluster key, over TLS")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		httpError(w, http.StatusMisdirectedRequest, err.Error())
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrShutdown):
		httpError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, chunk.ErrNotFound):
		httpError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, chunk.ErrNoSpace):
		httpError(w, http.StatusInsufficientStorage, err.Error())
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, chunk.ErrBadID), errors.Is(err, chunk.ErrBadShard):
		httpError(w, http.StatusBadRequest, err.Error())
	default:
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Client calls other nodes' peer services. It implements cluster.PeerClient.
type Client struct {
	hc *http.Client
}

var _ cluster.PeerClient = (*Client)(nil)

// NewClient returns a client that dials other nodes with tlsConfig, which
// carries this node's certificate and the CAs it trusts.
func NewClient(tlsConfig *tls.Config, opts ...ClientOption) *Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		// A request body that fits behind its headers is copied into the
		// buffer; a larger one goes through the connection's ReadFrom,
		// which allocates 32 KiB per request for a body in memory.
		WriteBufferSize:     64 << 10,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(tr)
	}
	tr.DialTLSContext = coalescingDialer(tr)
	return &Client{hc: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, addr, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return c.send(req, addr)
}

// send sends and turns an error answer into an error
// wrapping the matching sentinel.
func (c *Client) send(req *http.Request, addr string) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w: %w", ctxErr, err)
		}
		return nil, fmt.Errorf("%w: %w", cluster.ErrPeerUnreachable, err)
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	switch resp.StatusCode {
	case http.StatusMisdirectedRequest:
		return nil, fmt.Errorf("%w: %s", cluster.ErrNotLeader, e.Error)
	case http.StatusServiceUnavailable:
		return nil, fmt.Errorf("%w: %s", cluster.ErrNoLeader, e.Error)
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s", chunk.ErrNotFound, e.Error)
	case http.StatusInsufficientStorage:
		return nil, fmt.Errorf("%w: %s", chunk.ErrNoSpace, strings.TrimPrefix(e.Error, chunk.ErrNoSpace.Error()+": "))
	}
	return nil, fmt.Errorf("peer %s answered %d: %s", addr, resp.StatusCode, e.Error)
}

// Apply implements cluster.PeerClient.
func (c *Client) Apply(ctx context.Context, addr string, batch []byte) ([]fsm.Result, error) {
	resp, err := c.do(ctx, http.MethodPost, addr, Prefix+"apply", batch)
	if err != nil {
		return nil, fmt.Errorf("forward writes to %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var res []fsm.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("decode forwarded results from %s: %w: %w", addr, cluster.ErrPeerUnreachable, err)
	}
	return res, nil
}

// ReadIndex implements cluster.PeerClient.
func (c *Client) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	resp, err := c.do(ctx, http.MethodPost, addr, Prefix+"readindex", nil)
	if err != nil {
		return 0, fmt.Errorf("read index from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var v struct{ Index uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, fmt.Errorf("decode read index from %s: %w: %w", addr, cluster.ErrPeerUnreachable, err)
	}
	return v.Index, nil
}

// shardBufs are the buffers a shard range is served through. A cold pull
// streams half of each stripe from a peer: in 32 KiB reads, the reads of
// one 512 MiB shard file were 16,396 syscalls on the serving node.
var shardBufs = sync.Pool{New: func() any { b := make([]byte, shardBufSize); return &b }}

const shardBufSize = 1 << 20

func shardPath(id string, index int) string {
	return Prefix + "shards/" + url.PathEscape(id) + "/" + strconv.Itoa(index)
}

// PutShard implements cluster.PeerClient. The body streams with chunked
// encoding: its length is known only once the push has read its input.
func (c *Client) PutShard(ctx context.Context, addr, id string, index int, parity bool, body io.Reader) error {
	u := "https://" + addr + shardPath(id, index)
	if parity {
		// A query parameter, so a node of an older build just ignores it.
		u += "?parity=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return err
	}
	resp, err := c.send(req, addr)
	if err != nil {
		return fmt.Errorf("put shard %d of %s on %s: %w", index, id, addr, err)
	}
	resp.Body.Close()
	return nil
}

// PutPacked implements cluster.PeerClient.
func (c *Client) PutPacked(ctx context.Context, addr string, shards []cluster.PackedShard) error {
	bp, err := packedBody(shards)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, addr, Prefix+"packed", *bp)
	if err != nil {
		return fmt.Errorf("put %d packed shards on %s: %w", len(shards), addr, err)
	}
	resp.Body.Close()
	sendPool.Put(bp)
	return nil
}

// GetShard implements cluster.PeerClient. The stream fails with
// io.ErrUnexpectedEOF if the peer stops early.
func (c *Client) GetShard(ctx context.Context, addr, id string, index int, off, n int64, after uint64) (io.ReadCloser, error) {
	q := url.Values{"off": {strconv.FormatInt(off, 10)}, "n": {strconv.FormatInt(n, 10)}, "after": {strconv.FormatUint(after, 10)}}
	resp, err := c.do(ctx, http.MethodGet, addr, shardPath(id, index)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("get shard %d of %s from %s: %w", index, id, addr, err)
	}
	if resp.ContentLength != n {
		resp.Body.Close()
		return nil, fmt.Errorf("get shard %d of %s from %s: peer sends %d bytes, want %d", index, id, addr, resp.ContentLength, n)
	}
	return resp.Body, nil
}

// DeleteShard implements cluster.PeerClient.
func (c *Client) DeleteShard(ctx context.Context, addr, id string, index int) error {
	resp, err := c.do(ctx, http.MethodDelete, addr, shardPath(id, index), nil)
	if err != nil {
		return fmt.Errorf("delete shard %d of %s on %s: %w", index, id, addr, err)
	}
	resp.Body.Close()
	return nil
}

// Ping implements cluster.PeerClient.
func (c *Client) Ping(ctx context.Context, addr string) error {
	resp, err := c.do(ctx, http.MethodGet, addr, Prefix+"ping", nil)
	if err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	resp.Body.Close()
	return nil
}

// Stats implements cluster.PeerClient.
func (c *Client) Stats(ctx context.Context, addr string) (cluster.Stats, error) {
	resp, err := c.do(ctx, http.MethodGet, addr, Prefix+"stats", nil)
	if err != nil {
		return cluster.Stats{}, fmt.Errorf("stats of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var s cluster.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return cluster.Stats{}, fmt.Errorf("decode stats of %s: %w", addr, err)
	}
	return s, nil
}
