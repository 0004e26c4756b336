package clustertest

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pier-registry/pier/testing/testcerts"
	"github.com/pier-registry/pier/transport/clustertls"
	"github.com/pier-registry/pier/transport/server"
)

// Nodes serving the public API over HTTPS (--tls-cert, --tls-key): clients
// that trust the CA push and pull, plain HTTP changes nothing, peer calls
// keep working on the same port (a pushed artifact is erasure-coded across
// nodes and pulled from another), and a rotated certificate is served
// without a restart.
func TestPublicTLS(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := ca.Issue(t, certFile, keyFile)
	c := New(t, 3, Options{Tune: func(i int, cfg *server.Config) {
		cfg.TLSCert, cfg.TLSKey, cfg.TLSPoll = certFile, keyFile, 20*time.Millisecond
	}})
	hc := &http.Client{Timeout: Wait(), Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool},
		DisableKeepAlives: true, // every request a new handshake: rotation shows
	}}
	httpsURL := func(i int) string { return "https://" + c.Nodes[i].cfg.HTTPBind }
	do := func(method, url string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	body := bigBytes(7, 1<<20)
	if resp, b := do("PUT", httpsURL(0)+"/artifacts/tls.bin", body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("push over https: %d %s", resp.StatusCode, b)
	}
	for i := range c.Nodes {
		resp, b := do("GET", httpsURL(i)+"/artifacts/tls.bin", nil)
		if resp.StatusCode != http.StatusOK || sha256.Sum256(b) != sha256.Sum256(body) {
			t.Fatalf("pull over https from %s: %d, %d bytes", c.Nodes[i].ID, resp.StatusCode, len(b))
		}
		if resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first) != 0 {
			t.Fatalf("%s served another certificate", c.Nodes[i].ID)
		}
	}

	t.Run("plain HTTP is refused and changes nothing", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", "http://"+c.Nodes[1].cfg.HTTPBind+"/artifacts/plain.bin", strings.NewReader("over plain http"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || err != nil || !strings.Contains(e.Error, "https://") {
			t.Fatalf("plain PUT: %d %q (%v), want 400 naming https", resp.StatusCode, e.Error, err)
		}
		if resp, b := do("GET", httpsURL(0)+"/api/v1/artifacts/plain.bin", nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("a refused plain push left %d %s", resp.StatusCode, b)
		}
	})

	t.Run("a client that does not trust the CA is stopped", func(t *testing.T) {
		_, err := (&http.Client{Timeout: Wait()}).Get(httpsURL(0) + "/healthz")
		var verr *tls.CertificateVerificationError
		if err == nil || !errors.As(err, &verr) {
			t.Fatalf("untrusted client: %v, want an unknown-authority error", err)
		}
	})

	t.Run("asking for the peer service without the cluster key fails the handshake", func(t *testing.T) {
		d := &net.Dialer{Timeout: Wait()}
		conn, err := tls.DialWithDialer(d, "tcp", c.Nodes[0].cfg.HTTPBind, &tls.Config{
			ServerName: clustertls.ServerName, InsecureSkipVerify: true,
		})
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			conn.SetDeadline(time.Now().Add(Wait()))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Fatal("a client without the cluster key completed a peer handshake")
		}
	})

	t.Run("a rotated certificate is served without a restart", func(t *testing.T) {
		second := ca.Issue(t, certFile, keyFile)
		Eventually(t, Wait(), func() error {
			for i := range c.Nodes {
				resp, _ := do("GET", httpsURL(i)+"/healthz", nil)
				if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(second) != 0 {
					return fmt.Errorf("%s serves serial %v, want %v", c.Nodes[i].ID, got, second)
				}
			}
			return nil
		})
		resp, b := do("GET", httpsURL(2)+"/artifacts/tls.bin", nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
			t.Fatalf("pull after rotation: %d", resp.StatusCode)
		}
	})
}

// The issue's own line: `curl -u ci:SECRET -X POST -F "file=@..."
// https://NODE/upload --cacert ca.pem` against nodes with TLS and access
// control both on.
func TestUploadOverHTTPSWithBasicAuth(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Issue(t, certFile, keyFile)
	c := New(t, 3, Options{Tune: func(i int, cfg *server.Config) {
		cfg.TLSCert, cfg.TLSKey = certFile, keyFile
		cfg.API.Auth, cfg.Node.IssueAdminToken = true, true
	}})
	hc := &http.Client{Timeout: Wait(), Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	url := func(i int, path string) string { return "https://" + c.Nodes[i].cfg.HTTPBind + path }
	var admin, ci string
	Eventually(t, Wait(), func() error {
		for _, n := range c.Nodes {
			if b, err := os.ReadFile(filepath.Join(n.cfg.Node.DataDir, "admin.token")); err == nil {
				admin = strings.TrimSpace(string(b))
			}
		}
		if admin == "" {
			return fmt.Errorf("no admin.token yet")
		}
		req, _ := http.NewRequest("POST", url(0, "/api/v1/tokens"), strings.NewReader(`{"name":"ci","scopes":["push:myapp-*","pull"]}`))
		req.SetBasicAuth("admin", admin)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var tok struct{ Secret string }
		json.NewDecoder(resp.Body).Decode(&tok)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("create token: %d", resp.StatusCode)
		}
		ci = tok.Secret
		return nil
	})
	body := bigBytes(9, 200<<10)
	upload := func(u string, user, secret string) int {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", "myapp-v1.2.3.jar")
		fw.Write(body)
		mw.Close()
		req, _ := http.NewRequest("POST", u, &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if user != "" {
			req.SetBasicAuth(user, secret)
		}
		cl := hc
		if strings.HasPrefix(u, "http:") {
			cl = http.DefaultClient
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	Eventually(t, Wait(), func() error {
		if st := upload(url(1, "/upload"), "ci", ci); st != http.StatusCreated {
			return fmt.Errorf("upload over https with basic auth: %d", st)
		}
		return nil
	})
	if st := upload("http://"+c.Nodes[1].cfg.HTTPBind+"/upload", "ci", ci); st != http.StatusBadRequest {
		t.Fatalf("plain http: %d, want 400", st)
	}
	if st := upload(url(2, "/upload"), "", ""); st != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d, want 401", st)
	}
	req, _ := http.NewRequest("GET", url(2, "/artifacts/myapp-v1.2.3.jar"), nil)
	req.SetBasicAuth("ci", ci)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("pull over https: %d, %d bytes", resp.StatusCode, len(got))
	}
}
