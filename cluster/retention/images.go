package retention

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// The registry's names (transport/oci/names.go): a blob of repository R is
// _oci/R/_blobs/<alg>/<hex>, a manifest _oci/R/_manifests/<alg>/<hex>, and
// no repository path has a segment starting with '_', so the last marker
// ends the repository.
const (
	blobsSegment     = "/_blobs/"
	manifestsSegment = "/_manifests/"
	// labelSubject is the label of a manifest with a subject (a referrer):
	// the subject's digest.
	labelSubject = "oci.subject"
)

// Images is what the image rules need besides the listings.
type Images struct {
	// LastTagChange is when an artifact last gained or lost a tag (its tag
	// history); zero when never.
	LastTagChange func(name string) time.Time
	// Refs reads a manifest's bytes and returns the digests it references
	// (ManifestRefs).
	Refs func(a fsm.Artifact) ([]string, error)
}

// ociName splits a registry name into its repository, its kind ("blob" or
// "manifest") and the OCI digest it is named by; ok is false for any
// other name.
func ociName(name string) (repo, kind, digest string, ok bool) {
	rest, found := strings.CutPrefix(name, fsm.OCIPrefix)
	if !found {
		return "", "", "", false
	}
	b, m := strings.LastIndex(rest, blobsSegment), strings.LastIndex(rest, manifestsSegment)
	seg, kind := blobsSegment, "blob"
	i := b
	if m > b {
		seg, kind, i = manifestsSegment, "manifest", m
	}
	if i <= 0 {
		return "", "", "", false
	}
	alg, hex, found := strings.Cut(rest[i+len(seg):], "/")
	if !found || alg == "" || hex == "" || strings.Contains(hex, "/") {
		return "", "", "", false
	}
	return rest[:i], kind, alg + ":" + hex, true
}

// BlobRepository returns the repository of a registry blob's name; false
// for any other name.
func BlobRepository(name string) (string, bool) {
	repo, kind, _, ok := ociName(name)
	return repo, ok && kind == "blob"
}

// ManifestRefs returns the digests an OCI or Docker manifest or index
// references and so keeps: its config, layers and (artifact manifests')
// blobs, and the manifests an index lists. Not its subject: a referrer
// depends on its subject, it does not keep it (the planner reads the
// subject from the manifest's label).
func ManifestRefs(body []byte) ([]string, error) {
	type desc struct {
		Digest string `json:"digest"`
	}
	var m struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Blobs     []desc `json:"blobs"`
		Manifests []desc `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var out []string
	for _, d := range slices.Concat(m.Layers, m.Blobs, m.Manifests) {
		out = append(out, d.Digest)
	}
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	return out, nil
}

// repository is one repository's live manifests (newest first) and blobs.
type repository struct {
	name      string
	manifests []fsm.Artifact
	blobs     []fsm.Artifact
}

// PlanImages returns what the Images policies among policies delete at
// now: per repository, manifests first (tagged ones beyond keep-last and
// max-age, untagged ones older than untagged-max-age, minus what kept ones
// reference or have as subject), then blobs no kept manifest references
// that are older than blob-grace. A repository whose manifests cannot all
// be read loses nothing this run: what they reference is unknown. artifacts
// yields the live artifacts under a prefix newest first; an artifact is
// governed by the policy with the longest prefix of its name, plain or not.
func PlanImages(policies []fsm.RetentionPolicy, artifacts func(prefix string) iter.Seq[fsm.Artifact], img Images, now time.Time) ([]Deletion, error) {
	var out []Deletion
	var errs []error
	for _, p := range policies {
		if !p.Images {
			continue
		}
		var repos []*repository
		byName := map[string]*repository{}
		for a := range artifacts(p.Prefix) {
			if governing(policies, a.Name).Prefix != p.Prefix {
				continue
			}
			repo, kind, _, ok := ociName(a.Name)
			if !ok {
				continue // not the registry's: an images policy leaves it alone
			}
			r := byName[repo]
			if r == nil {
				r = &repository{name: repo}
				byName[repo] = r
				repos = append(repos, r)
			}
			if kind == "manifest" {
				r.manifests = append(r.manifests, a)
			} else {
				r.blobs = append(r.blobs, a)
			}
		}
		for _, r := range repos {
			ds, err := planRepository(p, r, img, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("retention: repository %s: %w", r.name, err))
				continue
			}
			out = append(out, ds...)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%d repositories skipped: %w", len(errs), errs[0])
	}
	return out, nil
}

func planRepository(p fsm.RetentionPolicy, r *repository, img Images, now time.Time) ([]Deletion, error) {
	// The rules' candidates; everything else is a root that keeps what it
	// references.
	why := map[string]string{}
	rank := 0
	for _, m := range r.manifests {
		if len(m.Tags) > 0 {
			rank++
			if reason, ok := deletes(p, m, rank, now); ok {
				why[m.Name] = "image: tagged manifest " + reason
			}
			continue
		}
		since := m.Created
		if img.LastTagChange != nil {
			if t := img.LastTagChange(m.Name); t.After(since) {
				since = t
			}
		}
		if p.UntaggedMaxAge > 0 && now.Sub(since) > p.UntaggedMaxAge {
			why[m.Name] = fmt.Sprintf("image: untagged manifest for more than %s", p.UntaggedMaxAge)
		}
	}
	if len(why) == 0 && p.BlobGrace == 0 {
		return nil, nil
	}
	digestOf := map[string]string{} // manifest name -> its OCI digest
	refs := map[string][]string{}
	for _, m := range r.manifests {
		_, _, d, _ := ociName(m.Name)
		digestOf[m.Name] = d
		rs, err := img.Refs(m)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", d, err)
		}
		refs[m.Name] = rs
	}
	// Keep the roots, then what kept manifests reference and the referrers
	// of kept subjects, until nothing changes.
	kept := map[string]bool{}       // by name
	keptDigest := map[string]bool{} // by OCI digest
	referenced := map[string]bool{} // digests kept manifests reference
	keep := func(m fsm.Artifact) {
		kept[m.Name], keptDigest[digestOf[m.Name]] = true, true
		for _, d := range refs[m.Name] {
			referenced[d] = true
		}
	}
	for _, m := range r.manifests {
		if why[m.Name] == "" {
			keep(m)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, m := range r.manifests {
			if !kept[m.Name] && (referenced[digestOf[m.Name]] || keptDigest[m.Labels[labelSubject]]) {
				keep(m)
				changed = true
			}
		}
	}
	var out []Deletion
	for _, m := range r.manifests {
		if !kept[m.Name] {
			out = append(out, Deletion{Name: m.Name, Digest: m.Digest, Size: m.Size, Created: m.Created, Prefix: p.Prefix, Reason: why[m.Name]})
		}
	}
	if p.BlobGrace > 0 {
		for _, b := range r.blobs {
			_, _, d, _ := ociName(b.Name)
			if !referenced[d] && now.Sub(b.Created) > p.BlobGrace {
				out = append(out, Deletion{Name: b.Name, Digest: b.Digest, Size: b.Size, Created: b.Created, Prefix: p.Prefix,
					Reason: fmt.Sprintf("image: blob no kept manifest references, older than %s", p.BlobGrace)})
			}
		}
	}
	return out, nil
}
