// Package server assembles one node: the raft network layer, the cluster
// node, and on one HTTP port both the public API (plain HTTP, or HTTPS
// with the operator's certificate: TLSCert) and the peer service (mutual
// TLS under the cluster key). The port tells them apart by a connection's
// first byte (TLS or not) and, under TLS, by the server name the client
// asks for. cmd/pier and the in-process test harness both start nodes
// through it.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/transport/clustertls"
	"github.com/pier-registry/pier/transport/httpapi"
	"github.com/pier-registry/pier/transport/httpapi/uploads"
	"github.com/pier-registry/pier/transport/oci"
	"github.com/pier-registry/pier/transport/peer"
	"github.com/pier-registry/pier/transport/publictls"
	"github.com/pier-registry/pier/transport/raftnet"
	"github.com/pier-registry/pier/transport/telemetry"
)

// Config is a node's cluster config plus its listen addresses.
type Config struct {
	Node cluster.Config
	// HTTPBind is where the API and peer service listen; HTTPAdvertise is
	// what other nodes dial (default: the bound address).
	HTTPBind      string
	HTTPAdvertise string
	// RaftBind and RaftAdvertise are the raft listener and its public
	// address (default: the bound address).
	RaftBind      string
	RaftAdvertise string
	// RaftTimeout bounds raft network I/O.
	RaftTimeout time.Duration
	// WrapPeers, when set, wraps the peer client: tests inject faults into
	// node-to-node calls with it.
	WrapPeers func(cluster.PeerClient) cluster.PeerClient
	// Dial, when set, opens the TCP connections under the TLS of raft and
	// of peer calls (gossip takes Node.Gossip.Transport): tests route a
	// node's traffic through a network they can partition
	// (testing/netsplit).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// API bounds what one client can make the node do with a push; its
	// MaxObjectSize defaults to Node.MaxObjectSize.
	API httpapi.Options
	// Pprof serves Go's profiler under /debug/pprof/ on the HTTP listener.
	Pprof bool
	// TLSCert and TLSKey, when set, are the PEM files of the certificate
	// the public API serves over HTTPS; plain HTTP is then refused. They
	// are read again on ReloadTLS and when either file changes
	// (TLSPoll, default 10s). Peer calls keep their cluster-key TLS.
	TLSCert, TLSKey string
	TLSPoll         time.Duration
	// UploadTTL is how long a resumable upload may go without an append
	// before its bytes are removed (default 24h); MaxOpenUploads bounds
	// the uploads the node holds (default 1000). They live in
	// <data-dir>/uploads and survive a restart.
	UploadTTL      time.Duration
	MaxOpenUploads int
}

// Server is a running node.
type Server struct {
	Node *cluster.Node
	http *http.Server // the public API
	peer *http.Server // the peer service, over TLS
	// plain, with a public certificate, answers plain HTTP with a refusal.
	plain *http.Server
	cert  *publictls.Cert
	// stopWatch ends the certificate watcher.
	stopWatch context.CancelFunc
	// uploads holds the resumable uploads; stopUploads ends its expiry
	// loop, which wg counts.
	uploads     *uploads.Store
	stopUploads context.CancelFunc
	ln          net.Listener
	wg          sync.WaitGroup // the Serve loops and the watcher
	log         hclog.Logger
}

// Start listens and starts a node. The node joins its cluster in the
// background; Node.WaitReady tells when it serves.
func Start(cfg Config) (*Server, error) {
	log := cfg.Node.Logger
	if log == nil {
		log = hclog.NewNullLogger()
		cfg.Node.Logger = log
	}
	if cfg.RaftTimeout == 0 {
		cfg.RaftTimeout = 10 * time.Second
	}
	// Raft's own metrics on /metrics; once per process, before raft starts.
	if err := telemetry.Install(); err != nil {
		log.Warn("raft metrics are not exported", "error", err)
	}
	ln, err := net.Listen("tcp", cfg.HTTPBind)
	if err != nil {
		return nil, fmt.Errorf("listen for http on %s: %w", cfg.HTTPBind, err)
	}
	adv := cfg.HTTPAdvertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	if err := routable(adv); err != nil {
		ln.Close()
		return nil, fmt.Errorf("http advertise address: %w", err)
	}
	creds, err := clustertls.New(cfg.Node.ID, cfg.Node.ClusterKey, cfg.Node.AcceptKeys...)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cluster TLS: %w", err)
	}
	var cert *publictls.Cert
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			ln.Close()
			return nil, errors.New("public TLS needs both a certificate and a key file")
		}
		if cert, err = publictls.Load(cfg.TLSCert, cfg.TLSKey, log.Named("tls")); err != nil {
			ln.Close()
			return nil, err
		}
	}
	var raftOpts []raftnet.Option
	var peerOpts []peer.ClientOption
	if cfg.Dial != nil {
		raftOpts = append(raftOpts, raftnet.WithDialer(cfg.Dial))
		peerOpts = append(peerOpts, peer.WithDialer(cfg.Dial))
	}
	rt, err := raftnet.New(cfg.RaftBind, cfg.RaftAdvertise, cfg.RaftTimeout, creds, log.Named("raft-net"), raftOpts...)
	if err != nil {
		ln.Close()
		return nil, err
	}
	cfg.Node.HTTPAddr = adv
	cfg.Node.RaftTransport = rt
	cfg.Node.Peers = peer.NewClient(creds.Client(), peerOpts...)
	if cfg.WrapPeers != nil {
		cfg.Node.Peers = cfg.WrapPeers(cfg.Node.Peers)
	}
	node, err := cluster.New(cfg.Node)
	if err != nil {
		ln.Close()
		rt.Close()
		return nil, err
	}
	if cfg.API.MaxObjectSize == 0 {
		cfg.API.MaxObjectSize = cfg.Node.MaxObjectSize
	}
	ups, err := openUploads(cfg, node, log)
	if err != nil {
		ln.Close()
		rt.Close()
		node.Shutdown()
		return nil, err
	}
	cfg.API.Uploads = ups
	api := httpapi.New(node, log.Named("http"), cfg.API)
	// The OCI distribution API (/v2/), behind the API's own gate.
	// Its bearers are signed with a key derived from the cluster key, so
	// any node verifies what another issued.
	registry, err := oci.New(oci.Config{Node: node, Gate: api, Logger: log.Named("oci"),
		UploadDir:   filepath.Join(cfg.Node.DataDir, "oci-uploads"),
		ClusterKeys: append([]string{cfg.Node.ClusterKey}, cfg.Node.AcceptKeys...)})
	if err != nil {
		ln.Close()
		rt.Close()
		node.Shutdown()
		ups.Close()
		return nil, err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, oci.Prefix):
			registry.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, peer.Prefix):
			// Peer calls come over TLS, to the other server below.
			writeError(w, http.StatusForbidden, "the peer service answers only nodes holding the cluster key, over TLS")
		case cfg.Pprof && strings.HasPrefix(r.URL.Path, "/debug/pprof/"):
			pprofHandler(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
	httpLog := log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	plain, secure := clustertls.Demux(ln)
	tlsLog := log.Named("peer-tls")
	s := &Server{
		Node: node,
		ln:   ln,
		log:  log,
		cert: cert,
		http: &http.Server{
			Handler:           handler,
			MaxHeaderBytes:    64 << 10,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          httpLog,
		},
		peer: &http.Server{
			Handler:           peer.Handler(node),
			MaxHeaderBytes:    64 << 10,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          httpLog,
		},
	}
	s.uploads = ups
	var upCtx context.Context
	upCtx, s.stopUploads = context.WithCancel(context.Background())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ups.Run(upCtx, expireEvery(cfg.UploadTTL))
	}()
	reject := func(addr net.Addr, err error) {
		tlsLog.Warn("refused a peer connection without the cluster key", "remote", addr, "error", err)
	}
	scheme := "http"
	if cert == nil {
		s.wg.Add(2)
		go s.serve(s.http, plain)
		go s.serve(s.peer, clustertls.Listener(secure, creds.Server(), reject))
	} else {
		scheme = "https"
		peers, clients := clustertls.Split(secure, creds.Server(), cert.Config(), reject)
		s.plain = &http.Server{
			Handler:           http.HandlerFunc(refusePlain),
			MaxHeaderBytes:    64 << 10,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          httpLog,
		}
		poll := cfg.TLSPoll
		if poll <= 0 {
			poll = 10 * time.Second
		}
		var ctx context.Context
		ctx, s.stopWatch = context.WithCancel(context.Background())
		s.wg.Add(4)
		go s.serve(s.http, clients)
		go s.serve(s.peer, peers)
		go s.serve(s.plain, plain)
		go func() {
			defer s.wg.Done()
			cert.Watch(ctx, poll)
		}()
	}
	log.Info("node started", "id", cfg.Node.ID, "api", scheme+"://"+adv, "raft", rt.LocalAddr(), "gossip", cfg.Node.GossipAdvertise)
	return s, nil
}

// refusePlain answers a plain-HTTP request to a node that serves HTTPS:
// the request may have carried a token in the clear already, but nothing
// it asked for is done.
func refusePlain(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusBadRequest, "this node serves its API over HTTPS only: use https://"+r.Host+r.URL.Path)
}

// ReloadTLS reads the public certificate's files again (SIGHUP); on error
// the certificate in use stays. Without public TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.cert == nil {
		return nil
	}
	return s.cert.Reload()
}

// Scheme is "https" when the public API serves TLS, else "http".
func (s *Server) Scheme() string {
	if s.cert != nil {
		return "https"
	}
	return "http"
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	defer s.wg.Done()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		s.log.Error("http server stopped", "error", err)
	}
}

// HTTPAddr is the address the API listens on.
func (s *Server) HTTPAddr() string { return s.ln.Addr().String() }

// Close drains HTTP requests for up to ctx's deadline, then stops the node.
func (s *Server) Close(ctx context.Context) error {
	// Peer calls keep flowing while public requests drain: a push in
	// flight still needs its shards written and its command forwarded.
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	if perr := s.peer.Shutdown(ctx); perr != nil {
		s.peer.Close()
	}
	s.stopExtras()
	s.wg.Wait()
	s.Node.Shutdown()
	s.uploads.Close()
	return err
}

// Kill stops at once, dropping requests in flight: the closest an
// in-process test gets to SIGKILL.
func (s *Server) Kill() {
	s.http.Close()
	s.peer.Close()
	s.stopExtras()
	s.wg.Wait()
	// The node first: a completion in flight pushes through it and ends
	// with it; the store then waits for the requests still writing.
	s.Node.Shutdown()
	s.uploads.Close()
}

// stopExtras stops what only public TLS runs: the plain-HTTP refuser and
// the certificate watcher.
func (s *Server) stopExtras() {
	s.stopUploads()
	if s.plain != nil {
		s.plain.Close()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
}

// openUploads opens the node's store of resumable uploads in its data dir.
// A node whose disk is below its reserve refuses appends as it refuses
// pushes (507).
func openUploads(cfg Config, node *cluster.Node, log hclog.Logger) (*uploads.Store, error) {
	ups, err := uploads.Open(uploads.Config{
		Dir:     filepath.Join(cfg.Node.DataDir, "uploads"),
		Node:    cfg.Node.ID,
		TTL:     cfg.UploadTTL,
		MaxOpen: cfg.MaxOpenUploads,
		MaxSize: cfg.API.MaxObjectSize,
		Space: func() error {
			if node.DiskFull() {
				return fmt.Errorf("%w: node %s's data dir is below its free-space reserve (--min-free)", cluster.ErrNoSpace, cfg.Node.ID)
			}
			return nil
		},
		Logger: log.Named("uploads"),
	})
	if err != nil {
		return nil, fmt.Errorf("resumable uploads: %w", err)
	}
	return ups, nil
}

// expireEvery is how often expired uploads are looked for: often enough
// that an upload outlives its TTL by a tenth of it at most, at most once
// a second and at least once a minute.
func expireEvery(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = uploads.DefaultTTL
	}
	return min(max(ttl/10, time.Second), time.Minute)
}

// pprofHandler serves the profiles of net/http/pprof without registering
// them on http.DefaultServeMux.
func pprofHandler(w http.ResponseWriter, r *http.Request) {
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	default:
		pprof.Index(w, r)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func routable(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is not routable: set --advertise", addr)
	}
	return nil
}
