package clustertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/fsm"
)

var fsmQueryAll = fsm.Query{Limit: fsm.MaxLimit}

// snapshotState records what a bad request must not change: the metadata
// and the object files on every node.
func snapshotState(t *testing.T, c *Cluster) string {
	t.Helper()
	var b strings.Builder
	for _, i := range c.Running() {
		n := c.Nodes[i].Srv.Node
		objs, bytes, err := n.Shards().Usage()
		if err != nil {
			t.Fatal(err)
		}
		list, _, _ := n.FSM().List(fsmQueryAll)
		js, _ := json.Marshal(list)
		fmt.Fprintf(&b, "%s: %d shard files, %d bytes, %+v, %s\n", c.Nodes[i].ID, objs, bytes, n.Counts(), js)
	}
	return b.String()
}

func TestBadInputChangesNothing(t *testing.T) {
	c := New(t, 3, Options{})
	good := []byte("the original bytes")
	if r := Upload(t, c.Nodes[0].URL, "keep.bin", good, [2]string{"tag", "stable"}); r.Status != 201 {
		t.Fatalf("setup push: %d %s", r.Status, r.Body)
	}
	// Every node must have applied the setup before the baseline is taken.
	c.Nodes[2].Srv.Node.Barrier(t.Context())
	c.Nodes[1].Srv.Node.Barrier(t.Context())
	before := snapshotState(t, c)
	u := c.Nodes[1].URL
	other := []byte("other bytes")

	type req struct {
		name, method, path string
		body               []byte
		header             http.Header
		want               int
	}
	cases := []req{
		{"dot-dot segment", "PUT", "/artifacts/a/../b", other, nil, 400},
		{"encoded dot-dot", "PUT", "/artifacts/a/%2E%2E/b", other, nil, 400},
		{"empty segment", "PUT", "/artifacts/a//b", other, nil, 400},
		{"trailing slash", "PUT", "/artifacts/a/", other, nil, 400},
		{"empty name", "PUT", "/artifacts/", other, nil, 400},
		{"absolute path", "PUT", "/artifacts//etc/passwd", other, nil, 400},
		{"backslash", "PUT", "/artifacts/a%5Cb", other, nil, 400},
		{"control character", "PUT", "/artifacts/a%01b", other, nil, 400},
		{"newline", "PUT", "/artifacts/a%0Ab", other, nil, 400},
		{"invalid utf-8", "PUT", "/artifacts/a%FFb", other, nil, 400},
		{"name too long", "PUT", "/artifacts/" + strings.Repeat("n", 1100), other, nil, 400},
		{"wrong checksum", "PUT", "/artifacts/new.bin", other,
			http.Header{"X-Checksum-Sha256": {strings.Repeat("0", 64)}}, 400},
		{"malformed checksum", "PUT", "/artifacts/new.bin", other, http.Header{"X-Checksum-Sha256": {"xyz"}}, 400},
		{"bad label", "PUT", "/artifacts/new.bin", other, http.Header{"X-Pier-Label": {"novalue"}}, 400},
		{"bad label key", "PUT", "/artifacts/new.bin", other, http.Header{"X-Pier-Label": {"a b=c"}}, 400},
		{"bad tag", "PUT", "/artifacts/new.bin", other, http.Header{"X-Pier-Tag": {"no spaces"}}, 400},
		{"other bytes under a bound name", "PUT", "/artifacts/keep.bin", other, nil, 409},
		{"known conflict refused before the body", "PUT", "/artifacts/keep.bin", other,
			http.Header{"X-Checksum-Sha256": {strings.TrimPrefix(Digest(other), "sha256:")}}, 409},
		{"upload not multipart", "POST", "/upload", other, http.Header{"Content-Type": {"application/octet-stream"}}, 400},
		{"upload without file", "POST", "/upload", []byte("--X\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload truncated", "POST", "/upload", []byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\npartial bytes"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload bad name field after file", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nbytes\r\n--X\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n../evil\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload unknown field", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nbytes\r\n--X\r\nContent-Disposition: form-data; name=\"colour\"\r\n\r\nred\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload filename climbing out", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../etc/passwd\"\r\n\r\nbytes\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload absolute filename", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/etc/passwd\"\r\n\r\nbytes\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload NFD filename", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cafe\u0301.txt\"\r\n\r\nbytes\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload two sha256 fields", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"sha256\"\r\n\r\n" + strings.Repeat("0", 64) +
				"\r\n--X\r\nContent-Disposition: form-data; name=\"sha256\"\r\n\r\n" + strings.TrimPrefix(Digest([]byte("bytes")), "sha256:") +
				"\r\n--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nbytes\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload two name fields", "POST", "/upload",
			[]byte("--X\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\none.bin\r\n--X\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ntwo.bin" +
				"\r\n--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nbytes\r\n--X--\r\n"),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 400},
		{"upload fields over the envelope's MiB", "POST", "/upload", bigForm(20, 60<<10),
			http.Header{"Content-Type": {"multipart/form-data; boundary=X"}}, 413},
		{"two checksum headers, right then wrong", "PUT", "/artifacts/new.bin", other,
			http.Header{"X-Checksum-Sha256": {strings.TrimPrefix(Digest(other), "sha256:"), strings.Repeat("0", 64)}}, 400},
		{"two checksum headers, wrong then right", "PUT", "/artifacts/new.bin", other,
			http.Header{"X-Checksum-Sha256": {strings.Repeat("0", 64), strings.TrimPrefix(Digest(other), "sha256:")}}, 400},
		{"two version headers", "PUT", "/artifacts/new.bin", other, http.Header{"X-Pier-Version": {"1", "2"}}, 400},
		{"NFD name", "PUT", "/artifacts/cafe%CC%81.txt", other, nil, 400},
		{"right-to-left override", "PUT", "/artifacts/invoice%E2%80%AEgpj.exe", other, nil, 400},
		{"left-to-right isolate", "PUT", "/artifacts/a%E2%81%A6b", other, nil, 400},
		{"zero-width space", "PUT", "/artifacts/app%E2%80%8B.jar", other, nil, 400},
		{"zero-width joiner", "PUT", "/artifacts/a%E2%80%8Db", other, nil, 400},
		{"byte order mark", "PUT", "/artifacts/%EF%BB%BFapp.jar", other, nil, 400},
		{"arabic letter mark", "PUT", "/artifacts/a%D8%9Cb", other, nil, 400},
		{"no-break space", "PUT", "/artifacts/a%C2%A0b", other, nil, 400},
		{"tag NFD name", "PUT", "/api/v1/tags/prod?name=cafe%CC%81.txt", nil, nil, 400},
		{"tag missing artifact", "PUT", "/api/v1/tags/prod?name=missing.bin", nil, nil, 404},
		{"tag bad name", "PUT", "/api/v1/tags/prod?name=../x", nil, nil, 400},
		{"bad tag path", "PUT", "/api/v1/tags/bad%20tag?name=keep.bin", nil, nil, 400},
		{"untag missing artifact", "DELETE", "/api/v1/tags/stable?name=missing.bin", nil, nil, 404},
		{"delete missing artifact", "DELETE", "/api/v1/artifacts/missing.bin", nil, nil, 404},
		{"delete bad name", "DELETE", "/api/v1/artifacts/a//b", nil, nil, 400},
		{"pull missing artifact", "GET", "/artifacts/missing.bin", nil, nil, 404},
		{"pull bad name", "GET", "/artifacts/a/./b", nil, nil, 400},
		{"bad list limit", "GET", "/api/v1/artifacts?limit=-1", nil, nil, 400},
		{"bad page token", "GET", "/api/v1/artifacts?page_token=%21%21", nil, nil, 400},
		{"bad label filter", "GET", "/api/v1/artifacts?label=nokey", nil, nil, 400},
		{"latest bad tag", "GET", "/api/v1/latest?tag=a%20b", nil, nil, 400},
		{"unknown endpoint", "GET", "/api/v1/nope", nil, nil, 404},
		{"wrong method", "POST", "/artifacts/keep.bin", nil, nil, 405},
		{"peer service without credential", "POST", "/internal/v1/apply", []byte("{}"), nil, 403},
		{"huge header", "GET", "/artifacts/keep.bin", nil, http.Header{"X-Big": {strings.Repeat("h", 100<<10)}}, 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawRequest(t, u, tc.method, tc.path, tc.body, tc.header)
			if r.Status != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.Status, r.Body, tc.want)
			}
			if tc.want != 431 {
				var e struct{ Error string }
				if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
					t.Fatalf("error body is not JSON with an error: %q", r.Body)
				}
			}
		})
	}

	// Bodies cut short by the client: the server sees the connection close
	// before Content-Length bytes arrived. The short one would fit an
	// inlined object, the long one a multi-stripe erasure-coded one; neither
	// may be stored as if it had ended there.
	for _, cut := range []struct {
		name     string
		sent, cl int
	}{{"cut.bin", 5000, 100000}, {"cut-big.bin", 3<<20 + 12345, 8 << 20}} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /artifacts/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", cut.name, cut.cl)
		conn.Write(bytes.Repeat([]byte("z"), cut.sent))
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn)
		conn.Close()
	}

	// What a request changed might still be on its way through raft, so
	// compare after a barrier on every node.
	for _, i := range c.Running() {
		if err := c.Nodes[i].Srv.Node.Barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, 2*time.Second, func() error {
		if after := snapshotState(t, c); after != before {
			return fmt.Errorf("bad input changed state:\nbefore %s\nafter  %s", before, after)
		}
		return nil
	})
	pullEverywhere(t, c, "keep.bin", good)
}

// bigForm is an upload whose metadata fields (n labels of size bytes each)
// come before its file.
func bigForm(n, size int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "--X\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\nk%d=%s\r\n", i, strings.Repeat("v", size))
	}
	b.WriteString("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.bin\"\r\n\r\nbytes\r\n--X--\r\n")
	return b.Bytes()
}

// rawRequest sends a request whose path is written to the wire exactly as
// given, the way `curl --path-as-is` does; net/http would clean it.
func rawRequest(t *testing.T, base, method, path string, body []byte, header http.Header) Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: pier\r\nConnection: close\r\nContent-Length: %d\r\n", method, path, len(body))
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: rb}
}
