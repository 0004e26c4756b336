package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSigV4GetObject checks the signer against the worked example of AWS's
// S3 documentation ("Signature Calculations for the Authorization Header",
// example GET Object with a Range header).
func TestSigV4GetObject(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", "bytes=0-9")
	s := sigV4{access: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1"}
	s.sign(req, emptySHA256, time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization:\n got %s\nwant %s", got, want)
	}
}

func TestCanonicalQuery(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1:9000/bench?policy", nil)
	if got := canonicalQuery(req.URL.Query()); got != "policy=" {
		t.Errorf("canonicalQuery(?policy) = %q, want policy=", got)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://h/b/a%20b/c~d?prefix=x/y&list-type=2", nil)
	if got := canonicalQuery(req.URL.Query()); got != "list-type=2&prefix=x%2Fy" {
		t.Errorf("canonicalQuery = %q", got)
	}
	if got := canonicalURI(req.URL); !strings.HasSuffix(got, "/a%20b/c~d") {
		t.Errorf("canonicalURI = %q", got)
	}
}
