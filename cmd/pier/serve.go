package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pier-registry/pier/chunk/erasure"
	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/cluster/federation"
	"github.com/pier-registry/pier/transport/httpapi"
	"github.com/pier-registry/pier/transport/httpapi/uploads"
	"github.com/pier-registry/pier/transport/server"
	"github.com/pier-registry/pier/transport/telemetry"
)

// serveFlags are the flags of `pier serve`; each may also come from the
// environment as PIER_<FLAG> (dashes become underscores).
type serveFlags struct {
	id, dataDir, datacenter                 string
	httpAddr, gossipAddr, raftAddr, adverts string
	join                                    string
	bootstrapExpect                         int
	clusterKey, acceptKeys, logLevel        string
	insecure, logJSON                       bool
	maxObjectSize                           int64
	ec                                      string
	repairAfter                             time.Duration
	repairRate                              int64
	scrubInterval                           time.Duration
	minFree, cacheSize, pullCacheSize       int64
	pullCacheWarm                           int64
	inlineSize, maxUploadsPerClient         int
	bodyIdleTimeout                         time.Duration
	uploadTTL                               time.Duration
	pprof                                   bool
	tlsCert, tlsKey                         string
	auth, metricsOpen                       bool
	retentionInterval, antiEntropyInterval  time.Duration
	wanAddr, joinWAN, wanAdvertise          string
}

// serveCmd is `pier serve`: it runs a node until SIGINT or SIGTERM, or
// until the node has left the cluster.
func serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run a node",
		Long: `Starts a Pier node. Every flag may also be set in the environment as PIER_<FLAG>, dashes
as underscores (PIER_BOOTSTRAP_EXPECT=3); a flag on the command line wins over the
environment. docs/operations.md shows 3 nodes on 3 machines, systemd, compose and
Kubernetes.`,
		Example: `  SECRET=$(pier keygen)     # once per cluster; every node gets the same
  pier serve --id node1 --data-dir /var/lib/pier --http-addr 0.0.0.0:8081 \
    --gossip-addr 0.0.0.0:7946 --raft-addr 0.0.0.0:8300 --advertise 10.0.0.5 \
    --bootstrap-expect 3 --join 10.0.0.6:7946,10.0.0.7:7946 --cluster-key "$SECRET"
  pier serve --id trial --insecure --auth=false      # one node on 127.0.0.1, for a trial`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fromEnv(cmd.Flags(), os.LookupEnv); err != nil {
				return usagef("%v", err)
			}
			return runServe(f)
		},
	}
	f.declare(cmd.Flags())
	return cmd
}

// declare defines serve's flags on fs with their defaults.
func (f *serveFlags) declare(fs *pflag.FlagSet) {
	host, _ := os.Hostname()
	fs.SortFlags = false
	fs.StringVar(&f.id, "id", host, "unique node `id`; the default is the host name")
	fs.StringVar(&f.dataDir, "data-dir", "", "data `directory` (default ./data/<id>)")
	fs.StringVar(&f.datacenter, "datacenter", "dc1", "datacenter (cluster) `name`")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:8081", "public API and peer service listen `address`")
	fs.StringVar(&f.gossipAddr, "gossip-addr", "127.0.0.1:7946", "gossip listen `address` (TCP and UDP)")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:8300", "raft listen `address`")
	fs.StringVar(&f.adverts, "advertise", "", "IP or `host` other nodes use to reach this one, when binding 0.0.0.0")
	fs.StringVar(&f.join, "join", "", "comma-separated gossip `addresses` of existing members")
	fs.Var(&optionalInt{p: &f.bootstrapExpect, unset: -1}, "bootstrap-expect", "bootstrap raft once `N` nodes are seen; 0 never bootstraps and waits to be joined (default: 1 without --join, else 0)")
	fs.StringVar(&f.clusterKey, "cluster-key", "", "the cluster's shared `secret` ('pier keygen' makes one): encrypts and authenticates gossip, raft and peer calls; required unless --insecure")
	fs.StringVar(&f.acceptKeys, "cluster-key-accept", "", "comma-separated further `keys` accepted from peers but not sent with, for rotating the key (README: Running nodes)")
	fs.BoolVar(&f.insecure, "insecure", false, "run without a cluster key: ANYONE who can reach the node's ports can join, read and write; for local trials only")
	fs.BoolVar(&f.auth, "auth", true, "require an access token on every route but /healthz and /readyz (README: Access control); --auth=false opens the node to anyone who reaches it")
	fs.BoolVar(&f.metricsOpen, "metrics-open", false, "with --auth, serve /metrics without a token")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM `file` of the certificate (chain) the public API serves over HTTPS; plain HTTP is then refused. Reloaded on SIGHUP and when the file changes")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM `file` of --tls-cert's private key")
	fs.StringVar(&f.wanAddr, "wan-addr", "", "WAN gossip listen `address` (TCP and UDP) linking this datacenter to others; federation is off without it")
	fs.StringVar(&f.wanAdvertise, "wan-advertise", "", "IP or `host` other datacenters reach this node on (WAN gossip and the peer service on the --http-addr port), when it differs from --advertise")
	fs.DurationVar(&f.antiEntropyInterval, "anti-entropy-interval", federation.DefaultAntiEntropyInterval, "how often the leader compares the whole state with each other datacenter's and repairs what the feed missed (negative: never)")
	fs.StringVar(&f.joinWAN, "join-wan", "", "comma-separated WAN `addresses` of nodes of other datacenters")
	fs.StringVar(&f.ec, "ec", "", "erasure scheme `k+m` for pushes while k+m nodes are alive (default: by live node count)")
	fs.Int64Var(&f.maxObjectSize, "max-object-size", 0, "refuse larger artifacts, in `bytes` (0: no limit)")
	fs.DurationVar(&f.repairAfter, "repair-after", 5*time.Minute, "rebuild the shards of a node dead for this long")
	fs.Int64Var(&f.repairRate, "repair-rate", 64<<20, "`bytes` per second repair may read (0: no limit)")
	fs.DurationVar(&f.scrubInterval, "scrub-interval", 24*time.Hour, "how often every shard is re-read and verified")
	fs.Int64Var(&f.minFree, "min-free", 64<<20, "`bytes` kept free in the data dir: below it the node refuses pushes and shards, and hands leadership over (negative: no reserve)")
	fs.Int64Var(&f.cacheSize, "cache-size", 64<<20, "`bytes` of memory for recently read small objects (negative: no cache)")
	fs.Int64Var(&f.pullCacheWarm, "pull-cache-warm", cluster.DefaultPullCacheWarm, "`bytes` of the pull cache's block buffers made resident at start, so the node's first fill does not wait for new memory pages (0: none)")
	fs.Int64Var(&f.pullCacheSize, "pull-cache-size", 0, "`bytes` of disk for whole copies of the big artifacts this node served, which later pulls read instead of shards (0: a tenth of the data dir's free space at start; negative: no cache)")
	fs.IntVar(&f.inlineSize, "inline-size", 16<<10, "largest artifact, in `bytes`, stored as full copies appended to pack files on their nodes instead of as shard files of their own (negative: never; at most 64 KiB)")
	fs.DurationVar(&f.uploadTTL, "upload-ttl", uploads.DefaultTTL, "a resumable upload without an append for this long expires and its bytes are removed")
	fs.DurationVar(&f.bodyIdleTimeout, "body-idle-timeout", httpapi.DefaultBodyIdleTimeout, "cut a push whose body brings no byte for this long, with a 408 (negative: never)")
	fs.IntVar(&f.maxUploadsPerClient, "max-uploads-per-client", httpapi.DefaultMaxUploadsPerClient, "pushes one client address may have in flight; more get a 429 (negative: no bound)")
	fs.DurationVar(&f.retentionInterval, "retention-interval", time.Hour, "how often the leader applies the retention policies (pier retention; negative: only on pier retention run)")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log JSON lines")
	fs.BoolVar(&f.pprof, "pprof", false, "serve Go's profiler under /debug/pprof/ on the HTTP address")
}

// optionalInt is an int flag whose default is "not set" (unset), told in
// the flag's usage text rather than printed as a number: the default of
// --bootstrap-expect depends on --join.
type optionalInt struct {
	p     *int
	unset int
}

func (o *optionalInt) String() string {
	if o.p == nil || *o.p == o.unset {
		return ""
	}
	return strconv.Itoa(*o.p)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*o.p = n
	return nil
}

func (o *optionalInt) Type() string { return "int" }

// runServe runs a node with the parsed flags.
func runServe(f serveFlags) error {
	log := hclog.New(&hclog.LoggerOptions{
		Name: "pier", Level: hclog.LevelFromString(f.logLevel), JSONFormat: f.logJSON, Output: os.Stderr,
	})
	cfg, err := f.config(log)
	if err != nil {
		return err
	}
	if !f.auth {
		log.Warn("AUTHENTICATION IS OFF (--auth=false): anyone who reaches " + f.httpAddr + " can push, delete, retag and remove nodes")
	}
	// Raft's, its log store's and gossip's own metrics on /metrics: one
	// go-metrics sink per process, before the node starts emitting.
	if err := telemetry.Install(); err != nil {
		log.Warn("raft metrics are not exported", "error", err)
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				// Rotate the public certificate without a restart.
				if err := srv.ReloadTLS(); err != nil {
					log.Error("SIGHUP: the TLS certificate in use stays", "error", err)
				}
				continue
			}
			log.Info("stopping", "signal", s.String())
		case <-srv.Node.Left():
			log.Info("stopping: this node left the cluster")
		}
		break wait
	}
	signal.Stop(sig)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// fromEnv sets every flag not given on the command line from its PIER_*
// variable, if there is one: the command line wins over the environment.
func fromEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil {
			return
		}
		key := "PIER_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := lookup(key); ok {
			if e := fl.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", key, v, e)
			}
		}
	})
	return err
}

func (f serveFlags) config(log hclog.Logger) (server.Config, error) {
	if f.dataDir == "" {
		f.dataDir = filepath.Join("data", f.id)
	}
	var join []string
	for _, j := range strings.Split(f.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			join = append(join, j)
		}
	}
	if f.bootstrapExpect < 0 {
		f.bootstrapExpect = 0
		if len(join) == 0 {
			f.bootstrapExpect = 1
		}
	}
	key, accept, err := f.keys(log)
	if err != nil {
		return server.Config{}, err
	}
	var ec erasure.Scheme
	if f.ec != "" {
		var err error
		if ec, err = erasure.ParseScheme(f.ec); err != nil {
			return server.Config{}, fmt.Errorf("--ec: %w", err)
		}
	}
	adv := func(bind string) (string, error) { return advertiseAddr(bind, f.adverts) }
	httpAdv, err := adv(f.httpAddr)
	if err != nil {
		return server.Config{}, fmt.Errorf("--http-addr: %w", err)
	}
	gossipAdv, err := adv(f.gossipAddr)
	if err != nil {
		return server.Config{}, fmt.Errorf("--gossip-addr: %w", err)
	}
	raftAdv, err := adv(f.raftAddr)
	if err != nil {
		return server.Config{}, fmt.Errorf("--raft-addr: %w", err)
	}
	var wanAdv, wanHTTP string
	if f.wanAddr != "" {
		wadv := adv
		if f.wanAdvertise != "" {
			// The other datacenters route to another address of this node
			// than its own datacenter does (a WAN-side interface).
			wadv = func(bind string) (string, error) { return advertiseAddr(bind, f.wanAdvertise) }
			if wanHTTP, err = wadv(f.httpAddr); err != nil {
				return server.Config{}, fmt.Errorf("--wan-advertise: %w", err)
			}
		}
		if wanAdv, err = wadv(f.wanAddr); err != nil {
			return server.Config{}, fmt.Errorf("--wan-addr: %w", err)
		}
	}
	return server.Config{
		HTTPBind: f.httpAddr, HTTPAdvertise: httpAdv,
		RaftBind: f.raftAddr, RaftAdvertise: raftAdv, Pprof: f.pprof,
		TLSCert: f.tlsCert, TLSKey: f.tlsKey, UploadTTL: f.uploadTTL,
		API: httpapi.Options{BodyIdleTimeout: f.bodyIdleTimeout, MaxUploadsPerClient: f.maxUploadsPerClient,
			Auth: f.auth, MetricsOpen: f.metricsOpen},
		Node: cluster.Config{
			ID: f.id, Datacenter: f.datacenter, DataDir: f.dataDir, IssueAdminToken: f.auth,
			GossipBind: f.gossipAddr, GossipAdvertise: gossipAdv,
			Join: join, BootstrapExpect: f.bootstrapExpect,
			ClusterKey: key, AcceptKeys: accept,
			MaxObjectSize: f.maxObjectSize, EC: ec, Logger: log,
			RepairAfter: f.repairAfter, RepairRate: f.repairRate, ScrubInterval: f.scrubInterval,
			MinFree: f.minFree, CacheSize: f.cacheSize, PullCacheSize: f.pullCacheSize, PullCacheWarm: f.pullCacheWarm, InlineSize: f.inlineSize,
			RetentionInterval: f.retentionInterval,
			WANBind:           f.wanAddr, WANAdvertise: wanAdv, WANHTTPAddr: wanHTTP, JoinWAN: splitAddrs(f.joinWAN),
			AntiEntropyInterval: f.antiEntropyInterval,
		},
	}, nil
}

// keys returns the key to send with and the further keys to accept.
func (f serveFlags) keys(log hclog.Logger) (string, []string, error) {
	var accept []string
	for _, k := range strings.Split(f.acceptKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			accept = append(accept, k)
		}
	}
	switch {
	case f.insecure && (f.clusterKey != "" || len(accept) > 0):
		return "", nil, errors.New("--insecure and --cluster-key exclude each other")
	case f.insecure:
		log.Warn("INSECURE MODE (--insecure): node-to-node traffic uses a publicly known key; anyone who can reach this node's ports can join the cluster, read every artifact and change anything. Never use this outside a trial on one machine")
		return cluster.InsecureClusterKey, nil, nil
	case f.clusterKey == "":
		return "", nil, errors.New("no cluster key: set --cluster-key (or PIER_CLUSTER_KEY) to the secret every node of the cluster shares, e.g. one made by `pier keygen`; --insecure runs without one, open to anyone on the network")
	}
	if len(f.clusterKey) < 16 {
		log.Warn("the cluster key is shorter than 16 bytes: easy to guess; `pier keygen` makes a 32-byte one")
	}
	return f.clusterKey, accept, nil
}

// advertiseAddr returns the address peers should dial for a bind address:
// the bind address itself unless it is 0.0.0.0, in which case --advertise
// (resolved to an IP, as gossip requires) with the bind port.
func advertiseAddr(bind, advertise string) (string, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", err
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("port of %q: %w", bind, err)
	}
	if advertise == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return "", fmt.Errorf("%q binds every interface: set --advertise to the address peers should use", bind)
		}
		advertise = host
	}
	ip := net.ParseIP(advertise)
	if ip == nil {
		ips, err := net.LookupIP(advertise)
		if err != nil || len(ips) == 0 {
			return "", fmt.Errorf("resolve --advertise %q: %v", advertise, err)
		}
		ip = ips[0]
	}
	return net.JoinHostPort(ip.String(), port), nil
}
