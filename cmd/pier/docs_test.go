package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// docs/operations.md lists every flag of pier serve: a flag added without
// a word there fails make test, as a route without a row in docs/api.md does.
func TestOperatorGuideNamesEveryServeFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var f serveFlags
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.declare(fs)
	n := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		n++
		if !strings.Contains(string(doc), "`--"+fl.Name+"`") {
			t.Errorf("docs/operations.md does not mention `--%s`", fl.Name)
		}
	})
	if n < 30 {
		t.Fatalf("pier serve has %d flags: not what this test expects", n)
	}
}
