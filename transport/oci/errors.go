package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// The distribution spec's error codes (spec.md, "Error Codes"), plus
// UNAVAILABLE for a cluster that cannot answer now, as distribution has it.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	codeUnavailable         = "UNAVAILABLE"
)

// apiError is an error that already knows its answer: a status and a spec
// code. Handlers return these for what they refuse themselves; errors of
// the node are classified by answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// errorBody is the spec's error document.
type errorBody struct {
	Errors []errorItem `json:"errors"`
}

type errorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// classify maps an error to its status and spec code: the one place where
// errors meet statuses in this package. notFound is the code a missing
// artifact gets on the route that asked (a blob or a manifest).
func classify(err error, notFound string) (int, string) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, fsm.ErrNotFound):
		return http.StatusNotFound, notFound
	case errors.Is(err, cluster.ErrDigestMismatch):
		return http.StatusBadRequest, codeDigestInvalid
	case errors.Is(err, cluster.ErrTruncated), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, codeSizeInvalid
	case errors.Is(err, fsm.ErrInvalid):
		return http.StatusBadRequest, codeNameInvalid
	case errors.Is(err, fsm.ErrConflict):
		// Names here are content addresses, so only a tombstone of other
		// bytes could conflict, and they cannot exist; say so plainly.
		return http.StatusConflict, codeDenied
	case errors.Is(err, cluster.ErrTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, codeSizeInvalid
	case errors.Is(err, cluster.ErrNoSpace), errors.Is(err, fsm.ErrQuota):
		return http.StatusInsufficientStorage, codeDenied
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrUnavailable),
		errors.Is(err, cluster.ErrShutdown), errors.Is(err, cluster.ErrPeerUnreachable),
		errors.Is(err, cluster.ErrLeaving):
		return http.StatusServiceUnavailable, codeUnavailable
	case errors.Is(err, context.Canceled):
		return 499, codeUnavailable // the client went away; nobody reads this
	}
	return http.StatusInternalServerError, codeUnavailable
}

// writeError answers with the spec's error body (a 401's challenge is the
// caller's: it knows the scope). A HEAD gets the status
// and no body, as HTTP wants.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	b, _ := json.Marshal(errorBody{Errors: []errorItem{{Code: code, Message: msg}}})
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
