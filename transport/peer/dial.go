package peer

import (
	"context"
	"net"
	"net/http"
	"time"
)

// dialTimeout bounds making a connection to a peer: a node whose packets
// vanish must fail a call, not hold it for as long as its context allows.
const dialTimeout = 3 * time.Second

// ClientOption adjusts a Client.
type ClientOption func(*http.Transport)

// WithDialer makes the client open its TCP connections (TLS runs over
// them) with dial instead of net.Dialer, so in-process tests can partition
// nodes below TLS (testing/netsplit). Each dial is still bounded by
// dialTimeout.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) ClientOption {
	return func(tr *http.Transport) {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			return dial(ctx, network, addr)
		}
	}
}
