package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"strings"
)

// Where OCI content lives among Pier's artifact names. Repository path
// components start with a lowercase letter or digit (the spec's grammar),
// so "_blobs" and "_manifests" can never be part of a repository's name,
// and "_oci/" keeps all of it apart from ordinary artifacts:
//
//	_oci/<repo>/_blobs/<alg>/<hex>       a blob pushed to (or mounted in) repo
//	_oci/<repo>/_manifests/<alg>/<hex>   a manifest of repo; its tags are Pier tags
const (
	namePrefix     = "_oci/"
	blobsSegment   = "/_blobs/"
	manifestsSegmt = "/_manifests/"
)

func blobName(repo string, d digest) string {
	return namePrefix + repo + blobsSegment + d.alg + "/" + d.hex
}

func manifestPrefix(repo string) string { return namePrefix + repo + manifestsSegmt }

func manifestName(repo string, d digest) string {
	return manifestPrefix(repo) + d.alg + "/" + d.hex
}

// repoOf returns the repository of an internal name, "" for a name that is
// not one of ours.
func repoOf(name string) string {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return ""
	}
	for _, seg := range []string{blobsSegment, manifestsSegmt} {
		if i := strings.LastIndex(rest, seg); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

// digestOfName returns the digest an internal name is named after.
func digestOfName(name string) (digest, error) {
	i := strings.LastIndex(name, "/")
	j := strings.LastIndex(name[:max(i, 0)], "/")
	if i < 0 || j < 0 {
		return digest{}, fmt.Errorf("%s is not a content name", name)
	}
	return parseDigest(name[j+1:i] + ":" + name[i+1:])
}

// The spec's grammars (spec.md, "Pulling manifests").
var (
	repoRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxRepoLen keeps an internal name ("_oci/" + repo + "/_manifests/sha512/"
// + 128 hex) under Pier's 1,024-byte limit on names.
const maxRepoLen = 255

func validRepo(repo string) error {
	if len(repo) > maxRepoLen || !repoRE.MatchString(repo) {
		return fmt.Errorf("invalid repository name %q: lowercase path components of letters, digits and separators, at most %d bytes", trim(repo), maxRepoLen)
	}
	return nil
}

// trim keeps an echoed input short: a client's huge name is not worth
// sending back whole.
func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// digest is a parsed "<alg>:<hex>"; sha256 and sha512 are supported.
type digest struct {
	alg, hex string
}

func (d digest) String() string { return d.alg + ":" + d.hex }

func (d digest) hasher() hash.Hash {
	if d.alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// parseDigest checks a digest's form: a supported algorithm and lowercase
// hex of its length. Anything else is DIGEST_INVALID.
func parseDigest(s string) (digest, error) {
	alg, h, ok := strings.Cut(s, ":")
	want := 0
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	}
	if !ok || want == 0 {
		return digest{}, errf(http.StatusBadRequest, codeDigestInvalid, "unsupported digest %q: sha256:<64 hex> or sha512:<128 hex>", trim(s))
	}
	if len(h) != want || strings.ToLower(h) != h {
		return digest{}, errf(http.StatusBadRequest, codeDigestInvalid, "malformed digest %q", trim(s))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return digest{}, errf(http.StatusBadRequest, codeDigestInvalid, "malformed digest %q", trim(s))
	}
	return digest{alg: alg, hex: h}, nil
}

// sum returns the digest of b under alg.
func sum(alg string, b []byte) digest {
	d := digest{alg: alg}
	h := d.hasher()
	h.Write(b)
	d.hex = hex.EncodeToString(h.Sum(nil))
	return d
}
