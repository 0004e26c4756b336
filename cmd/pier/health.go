package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthCmd checks one node's readiness. Container health checks run it:
// the image holds nothing but the pier binary, so pier is its own probe.
func (c *cli) healthCmd(fs *flag.FlagSet) func(context.Context, []string) error {
	server := fs.String("server", "", "node to check (default: $PIER_SERVER, else this host's $PIER_HTTP_ADDR, else 127.0.0.1:8081)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("health takes no arguments")
		}
		addr := healthTarget(*server, c.getenv)
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("health of %s: %w", addr, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s is not ready: %d %s", addr, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		fmt.Fprintf(c.stdout, "%s is ready\n", addr)
		return nil
	}
}

func healthTarget(flagValue string, getenv func(string) string) string {
	addr := flagValue
	if addr == "" {
		addr, _, _ = strings.Cut(getenv("PIER_SERVER"), ",")
	}
	if addr == "" {
		if bind := getenv("PIER_HTTP_ADDR"); bind != "" {
			if _, port, err := net.SplitHostPort(bind); err == nil {
				addr = "127.0.0.1:" + port
			}
		}
	}
	if addr == "" {
		addr = "127.0.0.1:8081"
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}
