package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pier-registry/pier/cluster"
	"github.com/pier-registry/pier/fsm"
)

// Labels a manifest's artifact carries, set from its bytes at push time
// (so a re-push of the same bytes brings the same labels): what a GET
// answers as Content-Type, and what the referrers API filters on.
const (
	labelMediaType    = "oci.media-type"
	labelSubject      = "oci.subject"
	labelArtifactType = "oci.artifact-type"
)

// Media types the registry knows by name.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// URLs say where a non-distributable layer lives instead.
	URLs []string `json:"urls,omitempty"`
}

// foreign reports whether a layer need not be pushed: a non-distributable
// (or Docker "foreign") layer, or one fetched from elsewhere (urls).
func (d descriptor) foreign() bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, ".nondistributable.") ||
		strings.Contains(d.MediaType, ".foreign.")
}

// manifest is what the registry reads of an image manifest or an index.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// reference is a manifest reference: a tag or a digest.
type reference struct {
	tag string
	dg  digest
}

func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := parseDigest(s)
		return reference{dg: d}, err
	}
	if !tagRE.MatchString(s) {
		return reference{}, errf(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", trim(s))
	}
	return reference{tag: s}, nil
}

func (g *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	if r.ContentLength > g.maxManif {
		g.fail(w, r, errf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest over %d bytes", g.maxManif), codeManifestUnknown)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxManif))
	if err != nil {
		g.fail(w, r, fmt.Errorf("read manifest: %w", err), codeManifestUnknown)
		return
	}
	alg := "sha256"
	if ref.tag == "" {
		alg = ref.dg.alg
	}
	d := sum(alg, body)
	if ref.tag == "" && d != ref.dg {
		g.fail(w, r, errf(http.StatusBadRequest, codeDigestInvalid, "manifest hashes to %s, not %s", d, ref.dg), codeManifestUnknown)
		return
	}
	labels, err := g.checkManifest(r, rt.repo, body)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	m := cluster.PushMeta{Name: manifestName(rt.repo, d), Labels: labels, Actor: g.gate.Actor(r)}
	if alg == "sha256" {
		m.ExpectDigest = d.String()
	}
	if _, _, err := g.node.Upload(writeContext(r), m, bytes.NewReader(body), nil); err != nil {
		g.fail(w, r, fmt.Errorf("push manifest %s to %s: %w", d, rt.repo, err), codeManifestUnknown)
		return
	}
	if ref.tag != "" {
		if err := g.moveTag(r, rt.repo, ref.tag, m.Name); err != nil {
			g.fail(w, r, err, codeManifestUnknown)
			return
		}
	}
	if s := labels[labelSubject]; s != "" {
		w.Header().Set("OCI-Subject", s)
	}
	w.Header().Set("Location", Prefix+rt.repo+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// checkManifest parses a manifest, checks that everything it references is
// in repo (blobs for an image manifest, manifests for an index; a subject
// need not exist yet, as the spec allows), and returns its labels.
func (g *Registry) checkManifest(r *http.Request, repo string, body []byte) (map[string]string, error) {
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errf(http.StatusBadRequest, codeManifestInvalid, "manifest is not JSON: %v", err)
	}
	if m.SchemaVersion != 2 {
		return nil, errf(http.StatusBadRequest, codeManifestInvalid, "schemaVersion must be 2")
	}
	mt := r.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	if m.MediaType != "" && mt != "" && m.MediaType != mt {
		return nil, errf(http.StatusBadRequest, codeManifestInvalid, "Content-Type %q but the manifest says %q", trim(mt), trim(m.MediaType))
	}
	if mt == "" {
		mt = m.MediaType
	}
	if mt == "" {
		switch {
		case m.Config != nil:
			mt = mediaOCIManifest
		case m.Manifests != nil:
			mt = mediaOCIIndex
		default:
			return nil, errf(http.StatusBadRequest, codeManifestInvalid, "no media type: send a Content-Type")
		}
	}
	labels := map[string]string{labelMediaType: mt}
	check := func(desc descriptor, name func(digest) string) error {
		d, err := parseDigest(desc.Digest)
		if err != nil {
			return errf(http.StatusBadRequest, codeManifestInvalid, "descriptor: %v", err)
		}
		if desc.Size < 0 {
			return errf(http.StatusBadRequest, codeManifestInvalid, "descriptor %s has a negative size", d)
		}
		a, err := g.node.Stat(r.Context(), name(d))
		if err != nil {
			if status, _ := classify(err, ""); status == http.StatusNotFound {
				return errf(http.StatusBadRequest, codeManifestBlobUnknown, "%s is not in %s", d, repo)
			}
			return fmt.Errorf("check %s: %w", d, err)
		}
		if a.Size != desc.Size {
			return errf(http.StatusBadRequest, codeManifestInvalid, "descriptor of %s says %d bytes, it has %d", d, desc.Size, a.Size)
		}
		return nil
	}
	blob := func(d digest) string { return blobName(repo, d) }
	man := func(d digest) string { return manifestName(repo, d) }
	switch mt {
	case mediaOCIIndex, mediaDockerList:
		for _, desc := range m.Manifests {
			if err := check(desc, man); err != nil {
				return nil, err
			}
		}
	default:
		if m.Config == nil {
			return nil, errf(http.StatusBadRequest, codeManifestInvalid, "an image manifest needs a config")
		}
		for _, desc := range append([]descriptor{*m.Config}, m.Layers...) {
			if desc.foreign() {
				if _, err := parseDigest(desc.Digest); err != nil {
					return nil, errf(http.StatusBadRequest, codeManifestInvalid, "descriptor: %v", err)
				}
				continue
			}
			if err := check(desc, blob); err != nil {
				return nil, err
			}
		}
	}
	if m.Subject != nil {
		d, err := parseDigest(m.Subject.Digest)
		if err != nil {
			return nil, errf(http.StatusBadRequest, codeManifestInvalid, "subject: %v", err)
		}
		labels[labelSubject] = d.String()
	}
	at := m.ArtifactType
	if at == "" && m.Config != nil {
		at = m.Config.MediaType
	}
	if at != "" {
		labels[labelArtifactType] = at
	}
	for k, v := range labels {
		if err := fsm.ValidateLabel(k, v); err != nil {
			return nil, errf(http.StatusBadRequest, codeManifestInvalid, "%v", err)
		}
	}
	return labels, nil
}

// resolve returns the manifest artifact a reference names in repo.
func (g *Registry) resolve(r *http.Request, repo string, ref reference) (fsm.Artifact, digest, error) {
	if ref.tag == "" {
		a, err := g.node.Stat(r.Context(), manifestName(repo, ref.dg))
		return a, ref.dg, err
	}
	holders, err := g.holders(r, repo, ref.tag)
	if err != nil {
		return fsm.Artifact{}, digest{}, err
	}
	if len(holders) == 0 {
		return fsm.Artifact{}, digest{}, errf(http.StatusNotFound, codeManifestUnknown, "no tag %s in %s", ref.tag, repo)
	}
	a := g.winner(holders, ref.tag)
	d, err := digestOfName(a.Name)
	return a, d, err
}

// holders lists repo's manifests carrying tag. Normally one; two for the
// moment a tag moves, or when two pushes moved it at once.
func (g *Registry) holders(r *http.Request, repo, tag string) ([]fsm.Artifact, error) {
	var out []fsm.Artifact
	q := fsm.Query{Prefix: manifestPrefix(repo), Tag: tag, Limit: fsm.MaxLimit}
	for {
		page, next, err := g.node.List(r.Context(), q)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", repo, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.PageToken = next
	}
}

// winner is the holder that got tag last (by its last "add" in the tag
// history, then the name): every node picks the same one from the same
// state, so a tag whose move is half done reads the same everywhere.
func (g *Registry) winner(holders []fsm.Artifact, tag string) fsm.Artifact {
	best, bestAt := holders[0], g.addedAt(holders[0].Name, tag)
	for _, a := range holders[1:] {
		at := g.addedAt(a.Name, tag)
		if at.After(bestAt) || (at.Equal(bestAt) && a.Name > best.Name) {
			best, bestAt = a, at
		}
	}
	return best
}

// addedAt is when name last got tag; the zero time for never.
func (g *Registry) addedAt(name, tag string) (t time.Time) {
	for _, e := range g.node.History(name) {
		if e.Tag == tag && e.Action == "add" && e.Time.After(t) {
			t = e.Time
		}
	}
	return t
}

// moveTag points repo's tag at the manifest name: add it there, then take
// it from every other holder. A tag on a manifest that holds it already but
// is not the winner is added afresh, so its add is the newest.
func (g *Registry) moveTag(r *http.Request, repo, tag, name string) error {
	actor := g.gate.Actor(r)
	holders, err := g.holders(r, repo, tag)
	if err != nil {
		return err
	}
	mine := slices.IndexFunc(holders, func(a fsm.Artifact) bool { return a.Name == name })
	if mine >= 0 && len(holders) == 1 {
		return nil
	}
	if mine >= 0 && g.winner(holders, tag).Name != name {
		if _, err := g.node.Tag(writeContext(r), name, tag, actor, false); err != nil {
			return fmt.Errorf("retag %s: %w", tag, err)
		}
		mine = -1
	}
	if mine < 0 {
		if _, err := g.node.Tag(writeContext(r), name, tag, actor, true); err != nil {
			return fmt.Errorf("tag %s as %s: %w", name, tag, err)
		}
	}
	if holders, err = g.holders(r, repo, tag); err != nil {
		return err
	}
	if len(holders) == 0 {
		return nil
	}
	win := g.winner(holders, tag)
	for _, a := range holders {
		if a.Name == win.Name {
			continue
		}
		if _, err := g.node.Tag(writeContext(r), a.Name, tag, actor, false); err != nil {
			return fmt.Errorf("move tag %s off %s: %w", tag, a.Name, err)
		}
	}
	return nil
}

func (g *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	a, d, err := g.resolve(r, rt.repo, ref)
	if err != nil {
		g.fail(w, r, fmt.Errorf("manifest %s in %s: %w", rt.arg, rt.repo, err), codeManifestUnknown)
		return
	}
	mt := a.Labels[labelMediaType]
	if mt == "" {
		mt = mediaOCIManifest
	}
	g.serveContent(w, r, a, d, mt)
}

func (g *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	actor := g.gate.Actor(r)
	if ref.tag != "" {
		// Deleting a tag untags; the manifest stays under its digest.
		holders, err := g.holders(r, rt.repo, ref.tag)
		if err == nil && len(holders) == 0 {
			err = errf(http.StatusNotFound, codeManifestUnknown, "no tag %s in %s", ref.tag, rt.repo)
		}
		for _, a := range holders {
			if err != nil {
				break
			}
			_, err = g.node.Tag(writeContext(r), a.Name, ref.tag, actor, false)
		}
		if err != nil {
			g.fail(w, r, fmt.Errorf("delete tag %s in %s: %w", ref.tag, rt.repo, err), codeManifestUnknown)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	name := manifestName(rt.repo, ref.dg)
	if _, err := g.node.Stat(r.Context(), name); err != nil {
		g.fail(w, r, fmt.Errorf("manifest %s in %s: %w", ref.dg, rt.repo, err), codeManifestUnknown)
		return
	}
	if err := g.node.Delete(writeContext(r), name, actor); err != nil {
		g.fail(w, r, fmt.Errorf("delete manifest %s in %s: %w", ref.dg, rt.repo, err), codeManifestUnknown)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// listAll returns every artifact under prefix (and labels), page by page.
func (g *Registry) listAll(r *http.Request, prefix string, labels map[string]string) ([]fsm.Artifact, error) {
	var out []fsm.Artifact
	q := fsm.Query{Prefix: prefix, Labels: labels, Limit: fsm.MaxLimit}
	for {
		page, next, err := g.node.List(r.Context(), q)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.PageToken = next
	}
}

// paginate applies the spec's n and last to a sorted list and sets the
// Link header of the next page. A bad n is a 400.
func paginate(w http.ResponseWriter, r *http.Request, all []string) ([]string, error) {
	q := r.URL.Query()
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	ns := q.Get("n")
	if ns == "" {
		return all, nil
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 {
		return nil, errf(http.StatusBadRequest, codeUnsupported, "n must be a count, not %q", trim(ns))
	}
	if n < len(all) {
		all = all[:n]
		if n > 0 {
			next := url.Values{"n": {ns}, "last": {all[n-1]}}
			w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, next.Encode()))
		}
	}
	return all, nil
}

func (g *Registry) listTags(w http.ResponseWriter, r *http.Request, rt route) {
	arts, err := g.listAll(r, manifestPrefix(rt.repo), nil)
	if err != nil {
		g.fail(w, r, err, codeNameUnknown)
		return
	}
	set := map[string]bool{}
	for _, a := range arts {
		for _, t := range a.Tags {
			set[t] = true
		}
	}
	tags := make([]string, 0, len(set))
	for t := range set {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	page, err := paginate(w, r, tags)
	if err != nil {
		g.fail(w, r, err, codeNameUnknown)
		return
	}
	writeJSON(w, map[string]any{"name": rt.repo, "tags": page})
}

func (g *Registry) catalog(w http.ResponseWriter, r *http.Request, _ route) {
	arts, err := g.listAll(r, namePrefix, nil)
	if err != nil {
		g.fail(w, r, err, codeNameUnknown)
		return
	}
	set := map[string]bool{}
	for _, a := range arts {
		if repo := repoOf(a.Name); repo != "" {
			set[repo] = true
		}
	}
	repos := make([]string, 0, len(set))
	for k := range set {
		repos = append(repos, k)
	}
	sort.Strings(repos)
	page, err := paginate(w, r, repos)
	if err != nil {
		g.fail(w, r, err, codeNameUnknown)
		return
	}
	writeJSON(w, map[string]any{"repositories": page})
}

// referrers answers the manifests of repo whose subject is the digest, as
// an image index, filtered by ?artifactType=.
func (g *Registry) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := parseDigest(rt.arg)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	labels := map[string]string{labelSubject: d.String()}
	filter := r.URL.Query().Get("artifactType")
	if filter != "" {
		labels[labelArtifactType] = filter
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	arts, err := g.listAll(r, manifestPrefix(rt.repo), labels)
	if err != nil {
		g.fail(w, r, err, codeManifestUnknown)
		return
	}
	descs := make([]descriptor, 0, len(arts))
	for _, a := range arts {
		md, err := digestOfName(a.Name)
		if err != nil {
			continue
		}
		desc := descriptor{MediaType: a.Labels[labelMediaType], Digest: md.String(), Size: a.Size,
			ArtifactType: a.Labels[labelArtifactType]}
		if ann, err := g.annotations(r, a); err == nil {
			desc.Annotations = ann
		}
		descs = append(descs, desc)
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest < descs[j].Digest })
	w.Header().Set("Content-Type", mediaOCIIndex)
	writeJSON(w, map[string]any{"schemaVersion": 2, "mediaType": mediaOCIIndex, "manifests": descs})
}

// annotations reads a manifest's annotations for its referrers entry.
func (g *Registry) annotations(r *http.Request, a fsm.Artifact) (map[string]string, error) {
	rc, err := g.node.Open(r.Context(), a, 0, a.Size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var m manifest
	if err := json.NewDecoder(io.LimitReader(rc, g.maxManif)).Decode(&m); err != nil {
		return nil, err
	}
	return m.Annotations, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
