package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOCIConformance runs the OCI distribution-spec conformance suite (the
// binary `make oci-conformance` builds from the pinned module) against
// node 1 of a 3-node cluster, with every workflow on. It is skipped
// unless PIER_OCI_CONFORMANCE names the binary; the suite's report is
// left in PIER_OCI_RESULTS (default: the test's temp dir).
func TestOCIConformance(t *testing.T) {
	bin := os.Getenv("PIER_OCI_CONFORMANCE")
	if bin == "" {
		t.Skip("PIER_OCI_CONFORMANCE names no conformance binary (make oci-conformance builds one)")
	}
	results := os.Getenv("PIER_OCI_RESULTS")
	if results == "" {
		results = t.TempDir()
	}
	c := New(t, 3, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+strings.TrimPrefix(c.Nodes[0].URL, "http://"),
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite output:\n%s", out)
	if err != nil {
		t.Errorf("conformance suite: %v (report in %s)", err, filepath.Join(results, "report.html"))
	}
}
