// Package caller carries who sent a request (the client's address) from
// the edge that took it to the commands it causes, for the audit log.
package caller

import "context"

type addrKey struct{}

// WithAddr returns ctx carrying the client's address.
func WithAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, addrKey{}, addr)
}

// Addr is the client address ctx carries, or "".
func Addr(ctx context.Context) string {
	a, _ := ctx.Value(addrKey{}).(string)
	return a
}
