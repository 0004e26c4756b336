package httpapi

import (
	"time"

	"github.com/pier-registry/pier/transport/httpapi/uploads"
)

// Options bound what one client can make a node do with a push. A zero
// field takes its default.
type Options struct {
	// MaxObjectSize refuses, with 413 and before a byte of the body is
	// read, a push whose declared Content-Length is larger (an upload's:
	// larger than MaxObjectSize plus MultipartSlack for the form around
	// the file). Set it to the node's --max-object-size; 0 means no limit.
	// A body without a Content-Length is cut by the node itself.
	MaxObjectSize int64
	// BodyIdleTimeout cuts a push whose body brings no byte for this long
	// with a 408 (default 60 s; negative: never).
	BodyIdleTimeout time.Duration
	// MaxUploadsPerClient bounds the pushes one client address may have
	// in flight; more get a 429 with Retry-After before their body is
	// read (default 32; negative: no bound).
	MaxUploadsPerClient int
	// Auth makes every route but /healthz and /readyz (and /metrics with
	// MetricsOpen) need a token with the right scope (auth.go).
	Auth        bool
	MetricsOpen bool
	// Now is the clock tokens expire by (default time.Now).
	Now func() time.Time
	// Uploads keeps this node's resumable uploads (/api/v1/uploads); the
	// caller owns it (opens it, runs its expiry, closes it after the
	// server). Without it those routes answer 501.
	Uploads *uploads.Store
}

// Defaults of Options.
const (
	DefaultBodyIdleTimeout     = 60 * time.Second
	DefaultMaxUploadsPerClient = 32
	// MultipartSlack is what an upload may carry besides the file's
	// bytes: boundaries, part headers and the metadata fields.
	MultipartSlack = 1 << 20
)

func (o Options) withDefaults() Options {
	if o.BodyIdleTimeout == 0 {
		o.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxUploadsPerClient == 0 {
		o.MaxUploadsPerClient = DefaultMaxUploadsPerClient
	}
	return o
}
