package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// nginxServer is the single-node baseline: nginx serving files from a
// directory, with PUT through the dav module.
type nginxServer struct {
	p    *proc
	base string // http://127.0.0.1:port
	root string
}

const nginxConf = `# Written by testing/bench; started as nginx -c <this> -g 'daemon off;'.
%sworker_processes 2;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_max_body_size 0;
    client_body_temp_path %[2]s/client_body_temp;
    proxy_temp_path %[2]s/proxy_temp;
    fastcgi_temp_path %[2]s/fastcgi_temp;
    uwsgi_temp_path %[2]s/uwsgi_temp;
    scgi_temp_path %[2]s/scgi_temp;
    server {
        listen 127.0.0.1:%[3]d;
        root %[4]s;
        location / {
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }
    }
}
`

func startNginx(ctx context.Context, bin, work string) (*nginxServer, error) {
	dir := filepath.Join(work, "nginx")
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would drop to nobody, who cannot write the 0700 work dir.
		user = "user root;\n"
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, user, dir, port, root), 0o644); err != nil {
		return nil, err
	}
	argv := []string{bin, "-p", dir + "/", "-c", conf, "-g", "daemon off;"}
	if strings.Contains(cmdOut(ctx, bin, "-h"), "-e filename") {
		// nginx >= 1.19.5: the error log before the config is read
		// (else /var/log/nginx, which a non-root user cannot open).
		argv = append(argv, "-e", filepath.Join(dir, "error.log"))
	}
	p, err := startProc("nginx", dir, filepath.Join(dir, "stderr.log"), argv...)
	if err != nil {
		return nil, err
	}
	n := &nginxServer{p: p, base: fmt.Sprintf("http://127.0.0.1:%d", port), root: root}
	// Any answer will do (the root has no index: 403/404).
	if err := waitHTTP(ctx, quickClient, n.base+"/nonexistent", http.StatusNotFound, p, 15*time.Second); err != nil {
		n.stop()
		return nil, fmt.Errorf("nginx: %w\n%s", err, p.tail(20))
	}
	return n, nil
}

func (n *nginxServer) stop() { n.p.stop(syscall.SIGTERM, 10*time.Second) }

// peakRSS is the VmHWM of the master and of each worker.
func (n *nginxServer) peakRSS() (master int64, workers []int64) {
	master, _ = vmHWM(n.p.pid())
	for _, c := range childPIDs(n.p.pid()) {
		if v, err := vmHWM(c); err == nil {
			workers = append(workers, v)
		}
	}
	return master, workers
}

// pierNode is one `pier serve` process.
type pierNode struct {
	id   string
	p    *proc
	base string // http://127.0.0.1:port
	data string // --data-dir
	hwm  int64  // VmHWM, read before it was stopped or killed
	down bool   // killed on purpose (degraded test)
}

type pierCluster struct {
	nodes []*pierNode
}

// startPier starts n nodes, all with --bootstrap-expect n, joined to the
// first one's gossip port, and waits until each answers /readyz with 200.
func startPier(ctx context.Context, bin, work string, n int, readyTimeout time.Duration, pprof bool) (*pierCluster, error) {
	c := &pierCluster{}
	var firstGossip int
	for i := 1; i <= n; i++ {
		var ports [3]int
		for j := range ports {
			p, err := freePort()
			if err != nil {
				c.stop()
				return nil, err
			}
			ports[j] = p
		}
		if i == 1 {
			firstGossip = ports[1]
		}
		id := fmt.Sprintf("node%d", i)
		data := filepath.Join(work, "pier", id)
		if err := os.MkdirAll(data, 0o755); err != nil {
			c.stop()
			return nil, err
		}
		argv := []string{bin, "serve", "--id", id, "--data-dir", data,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]),
			"--gossip-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]),
			"--bootstrap-expect", fmt.Sprint(n),
			"--cluster-key", "pier-bench-key", "--auth=false",
			"--log-level", "warn"}
		if i > 1 {
			argv = append(argv, "--join", fmt.Sprintf("127.0.0.1:%d", firstGossip))
		}
		if pprof {
			argv = append(argv, "--pprof")
		}
		p, err := startProc(id, work, filepath.Join(work, "pier", id+".log"), argv...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, &pierNode{id: id, p: p, base: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), data: data})
	}
	for _, nd := range c.nodes {
		if err := waitHTTP(ctx, quickClient, nd.base+"/readyz", http.StatusOK, nd.p, readyTimeout); err != nil {
			logs := c.tails(15)
			c.stop()
			return nil, fmt.Errorf("pier %s not ready: %w\n%s", nd.id, err, logs)
		}
	}
	return c, nil
}

func (c *pierCluster) tails(n int) string {
	var b strings.Builder
	for _, nd := range c.nodes {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", nd.id, nd.p.log, nd.p.tail(n))
	}
	return b.String()
}

// leader asks a live node who leads.
func (c *pierCluster) leader(ctx context.Context) string {
	for _, nd := range c.nodes {
		if nd.down {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nd.base+"/api/v1/cluster/members", nil)
		resp, err := quickClient.Do(req)
		if err != nil {
			continue
		}
		var m struct {
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err == nil && m.Leader != "" {
			return m.Leader
		}
	}
	return "?"
}

// recordRSS notes each live node's VmHWM (call it before stopping them).
func (c *pierCluster) recordRSS() {
	for _, nd := range c.nodes {
		if !nd.p.exited() {
			if v, err := vmHWM(nd.p.pid()); err == nil {
				nd.hwm = v
			}
		}
	}
}

// killNode SIGKILLs one node, noting its peak RSS first.
func (c *pierCluster) killNode(nd *pierNode) {
	if v, err := vmHWM(nd.p.pid()); err == nil {
		nd.hwm = v
	}
	nd.down = true
	nd.p.kill()
}

// stop SIGTERMs every live node at once, SIGKILLing any still up after 20 s.
func (c *pierCluster) stop() {
	done := make(chan struct{}, len(c.nodes))
	for _, nd := range c.nodes {
		go func() {
			if nd.p.stop(syscall.SIGTERM, 20*time.Second) {
				fmt.Fprintf(os.Stderr, "bench: %s did not stop within 20s of SIGTERM; killed\n", nd.id)
			}
			done <- struct{}{}
		}()
	}
	for range c.nodes {
		<-done
	}
}

// pierVersion runs `pier version`.
func pierVersion(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}
