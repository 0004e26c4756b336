package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
)

// image is a manifest or blob of repository repo, named by the fake hex
// id, created age ago, with its tags, references and subject.
type image struct {
	repo, kind, id string
	age            time.Duration
	tags           []string
	refs           []string // ids
	subject        string   // id
}

func (i image) artifact() fsm.Artifact {
	seg := "_blobs"
	if i.kind == "m" {
		seg = "_manifests"
	}
	a := fsm.Artifact{Name: fmt.Sprintf("_oci/%s/%s/sha256/%s", i.repo, seg, i.id), Digest: "sha256:" + i.id,
		Created: now.Add(-i.age), Tags: i.tags}
	if i.subject != "" {
		a.Labels = map[string]string{labelSubject: "sha256:" + i.subject}
	}
	return a
}

// imagesOf returns the artifacts and an Images reading the fakes' refs;
// untagged maps a name's id to when it last lost a tag; unreadable ids fail.
func imagesOf(items []image, untagged map[string]time.Duration, unreadable ...string) ([]fsm.Artifact, Images) {
	var arts []fsm.Artifact
	refs := map[string][]string{}
	for _, i := range items {
		a := i.artifact()
		arts = append(arts, a)
		for _, r := range i.refs {
			refs[a.Name] = append(refs[a.Name], "sha256:"+r)
		}
	}
	return arts, Images{
		LastTagChange: func(name string) time.Time {
			for id, ago := range untagged {
				if strings.HasSuffix(name, "/"+id) {
					return now.Add(-ago)
				}
			}
			return time.Time{}
		},
		Refs: func(a fsm.Artifact) ([]string, error) {
			for _, id := range unreadable {
				if strings.HasSuffix(a.Name, "/"+id) {
					return nil, errors.New("shard unreachable")
				}
			}
			return refs[a.Name], nil
		},
	}
}

func ids(ds []Deletion) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name[strings.LastIndex(d.Name, "/")+1:])
	}
	slices.Sort(out)
	return out
}

func TestPlanImages(t *testing.T) {
	day := 24 * time.Hour
	app := func(kind, id string, age time.Duration, tags []string, refs []string, subject string) image {
		return image{"team/app", kind, id, age, tags, refs, subject}
	}
	repoApp := []image{
		app("m", "idx", 0, []string{"multi"}, []string{"c1", "c2"}, ""),       // tagged index: its children stay
		app("m", "m5", 1*day, []string{"v5"}, []string{"cfg5", "l5"}, ""),     // kept: among the 3 newest tagged
		app("m", "m4", 2*day, []string{"v4"}, []string{"cfg4", "shared"}, ""), // kept
		app("m", "m3", 3*day, []string{"v3"}, []string{"cfg3"}, ""),           // beyond keep-last
		app("m", "m2", 4*day, []string{"v2"}, []string{"l2", "shared"}, ""),   // beyond keep-last
		app("m", "m1", 5*day, []string{"v1", "stable"}, []string{"l1"}, ""),   // protected
		app("m", "c1", 6*day, nil, []string{"l-c1"}, ""),                      // old, untagged, an index's child
		app("m", "c2", 6*day, nil, nil, ""),
		app("m", "u1", 3*day, nil, []string{"l-u1"}, ""), // old and untagged: goes
		app("m", "u2", 10*time.Minute, nil, nil, ""),     // untagged, young
		app("m", "u3", 3*day, nil, nil, ""),              // old but untagged 10 minutes ago
		app("m", "sig5", 3*day, nil, nil, "m5"),          // a referrer of a kept manifest
		app("m", "sig2", 3*day, nil, nil, "m2"),          // a referrer of a deleted one
		app("b", "cfg5", 1*day, nil, nil, ""), app("b", "l5", 1*day, nil, nil, ""),
		app("b", "cfg4", 2*day, nil, nil, ""), app("b", "shared", 4*day, nil, nil, ""),
		app("b", "cfg3", 3*day, nil, nil, ""), app("b", "l2", 4*day, nil, nil, ""),
		app("b", "l1", 5*day, nil, nil, ""), app("b", "l-c1", 6*day, nil, nil, ""),
		app("b", "l-u1", 3*day, nil, nil, ""),
		app("b", "orphan-old", 2*time.Hour, nil, nil, ""),      // no manifest: past the grace
		app("b", "orphan-young", 30*time.Minute, nil, nil, ""), // a push in progress
	}
	other := image{"team/other", "m", "o1", 30 * day, nil, nil, ""}
	plain := fsm.Artifact{Name: "_oci/team/app-notes.txt", Created: now.Add(-30 * day)}
	policy := fsm.RetentionPolicy{Prefix: "_oci/team/", Images: true, KeepLast: 3, ProtectTags: []string{"stable"},
		UntaggedMaxAge: time.Hour, BlobGrace: time.Hour}

	tests := []struct {
		name       string
		policies   []fsm.RetentionPolicy
		items      []image
		unreadable []string
		want       []string
		wantErr    bool
	}{
		{"every rule", []fsm.RetentionPolicy{policy}, repoApp, nil,
			[]string{"cfg3", "l-u1", "l2", "m2", "m3", "orphan-old", "sig2", "u1"}, false},
		{"keep-last alone deletes no untagged manifest and no blob", []fsm.RetentionPolicy{{Prefix: "_oci/team/", Images: true, KeepLast: 3, ProtectTags: []string{"stable"}}},
			repoApp, nil, []string{"m2", "m3"}, false},
		{"blob-grace alone: only blobs no manifest references", []fsm.RetentionPolicy{{Prefix: "_oci/team/", Images: true, BlobGrace: time.Hour}},
			repoApp, nil, []string{"orphan-old"}, false},
		{"a narrower plain policy governs its names", []fsm.RetentionPolicy{policy, {Prefix: "_oci/team/other/", KeepLast: 5}},
			append(slices.Clone(repoApp), other), nil,
			[]string{"cfg3", "l-u1", "l2", "m2", "m3", "orphan-old", "sig2", "u1"}, false},
		{"a repository with an unreadable manifest loses nothing; others do", []fsm.RetentionPolicy{policy},
			append(slices.Clone(repoApp), other), []string{"m4"}, []string{"o1"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arts, img := imagesOf(tc.items, map[string]time.Duration{"u3": 10 * time.Minute}, tc.unreadable...)
			arts = append(arts, plain)
			ds, err := PlanImages(tc.policies, store(arts), img, now)
			if got := ids(ds); !slices.Equal(got, tc.want) || (err != nil) != tc.wantErr {
				t.Fatalf("deletes %v (%v), want %v (error: %v)", got, err, tc.want, tc.wantErr)
			}
			// The plain planner leaves an images policy's names alone.
			if ds := Plan(tc.policies, store(arts), now); len(ds) != 0 {
				t.Fatalf("Plan deletes %v under an images policy", names(ds))
			}
			// Manifests go before blobs: a blob is never deleted while a
			// manifest the plan deletes still names it.
			seenBlob := false
			for _, d := range ds {
				isBlob := strings.Contains(d.Name, blobsSegment)
				if !isBlob && seenBlob && strings.HasPrefix(d.Name, "_oci/team/app/") {
					t.Fatalf("manifest %s after a blob of its repository", d.Name)
				}
				seenBlob = seenBlob || isBlob
				if d.Reason == "" || d.Prefix != tc.policies[0].Prefix && d.Prefix != tc.policies[len(tc.policies)-1].Prefix {
					t.Fatalf("deletion without its reason or policy: %+v", d)
				}
			}
		})
	}
}

func TestManifestRefs(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[{"digest":"sha256:l1"},{"digest":"sha256:l2"}]}`,
			[]string{"sha256:l1", "sha256:l2", "sha256:c"}},
		{`{"schemaVersion":2,"manifests":[{"digest":"sha256:a"},{"digest":"sha256:b"}]}`, []string{"sha256:a", "sha256:b"}},
		{`{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[],"subject":{"digest":"sha256:s"}}`, []string{"sha256:c"}},
		{`{"blobs":[{"digest":"sha256:x"}]}`, []string{"sha256:x"}},
	} {
		got, err := ManifestRefs([]byte(tc.body))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.body, got, err, tc.want)
		}
	}
	if _, err := ManifestRefs([]byte("not json")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestOCIName(t *testing.T) {
	for _, tc := range []struct{ name, repo, kind, digest string }{
		{"_oci/a/b/_blobs/sha256/ab", "a/b", "blob", "sha256:ab"},
		{"_oci/a/_manifests/sha512/cd", "a", "manifest", "sha512:cd"},
		{"_oci/a/_blobs/sha256", "", "", ""},
		{"_oci/_blobs/sha256/ab", "", "", ""},
		{"team/a/_blobs/sha256/ab", "", "", ""},
	} {
		repo, kind, d, _ := ociName(tc.name)
		if repo != tc.repo || kind != tc.kind || d != tc.digest {
			t.Errorf("%s: %q %q %q", tc.name, repo, kind, d)
		}
	}
}
