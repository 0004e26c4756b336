package clustertest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pier-registry/pier/transport/apiclient"
)

// The README's tour pushes myapp-v1.2.3.jar with curl and no metadata; its
// CLI section pushes the same file again with a version, a label and a
// tag. They are added (through another node), and the CLI's other pushes
// of the file with a different version are refused, naming the field.
func TestTourThenCLIKeepsWhatTheUserSaid(t *testing.T) {
	c := New(t, 3, Options{})
	body := []byte("hello pier\n")
	if r := Upload(t, c.Nodes[0].URL, "myapp-v1.2.3.jar", body); r.Status != http.StatusCreated {
		t.Fatalf("tour upload: %d %s", r.Status, r.Body)
	}
	client, err := apiclient.New([]string{c.Nodes[1].URL})
	if err != nil {
		t.Fatal(err)
	}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	art, created, err := client.Push(t.Context(), "myapp-v1.2.3.jar", open, int64(len(body)), apiclient.PushOptions{
		Version: "1.2.3", Labels: map[string]string{"os": "linux"}, Tags: []string{"staging-validated"},
	})
	if err != nil || created {
		t.Fatalf("CLI re-push: created %v, %v", created, err)
	}
	if art.Version != "1.2.3" || art.Labels["os"] != "linux" || !slices.Contains(art.Tags, "staging-validated") {
		t.Fatalf("after the CLI push: %+v", art)
	}
	Eventually(t, Wait(), func() error {
		got, err := client.Info(t.Context(), "myapp-v1.2.3.jar", true)
		if err != nil {
			return err
		}
		if got.Version != "1.2.3" || len(got.TagHistory) != 1 {
			return errors.New("info does not show the version and the tag's history yet")
		}
		return nil
	})
	ls, err := client.List(t.Context(), apiclient.ListOptions{Label: "os=linux"})
	if err != nil || len(ls.Artifacts) != 1 {
		t.Fatalf("ls --label os=linux: %v, %v", ls.Artifacts, err)
	}

	_, _, err = client.Push(t.Context(), "myapp-v1.2.3.jar", open, int64(len(body)), apiclient.PushOptions{Version: "1.2.4"})
	if !apiclient.IsConflict(err) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("a re-push with another version: %v, want a 409 naming the version", err)
	}
}
