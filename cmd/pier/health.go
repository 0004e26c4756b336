package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthCmd checks one node's readiness. Container health checks run it:
// the image holds nothing but the pier binary, so pier is its own probe.
func (c *cli) healthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "exit 0 when a node is ready",
		Long: `Checks one node's /readyz and exits 0 if it is ready, 1 if not: a container health
check (the image holds nothing but pier). The node is --server (its first address), else
$PIER_SERVER, else this host's $PIER_HTTP_ADDR port on 127.0.0.1, else 127.0.0.1:8081.`,
		Example: `  pier health
  pier health --server 127.0.0.1:8082 --timeout 1s
  HEALTHCHECK CMD ["/pier", "health"]      # in a Dockerfile`,
		Args: noArgs,
	}
	server := cmd.Flags().String("server", "", "`address` of the node to check")
	timeout := cmd.Flags().Duration("timeout", 3*time.Second, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		first, _, _ := strings.Cut(*server, ",")
		addr := healthTarget(first, c.getenv)
		ctx, cancel := context.WithTimeout(ctxOf(cmd), *timeout)
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
	return cmd
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
