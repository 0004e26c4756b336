package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// The clients: one for big transfers (no overall timeout: a bounded
// context per transfer instead), one for probes and small requests.
var (
	bulkClient = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
		IdleConnTimeout:     30 * time.Second,
	}}
	quickClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}}
)

// genFile writes size pseudo-random bytes to path and returns their SHA-256.
func genFile(path string, size int64, seed uint64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'p', 'i', 'e', 'r'})
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = rng.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return "", err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// putFile streams the file at path to url with Content-Length set and
// returns the time from sending the request to reading the whole answer.
func putFile(ctx context.Context, url, path string, size int64, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, f)
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := bulkClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PUT %s: %w", url, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("PUT %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return d, nil
}

// getURL fetches url. Without a hash the body is read into a reused buffer
// and dropped; with one it is hashed (not timed: the hashing would slow the
// client down, so digests are checked on separate untimed GETs).
func getURL(ctx context.Context, url string, hdr http.Header, want int64, h hash.Hash, limit time.Duration) (time.Duration, error) {
	return getWith(ctx, bulkClient, url, hdr, want, h, limit, make([]byte, 1<<20))
}

// getWith is getURL with a client and a read buffer of the caller's.
func getWith(ctx context.Context, hc *http.Client, url string, hdr http.Header, want int64, h hash.Hash, limit time.Duration, buf []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	var n int64
	if h != nil {
		n, err = io.CopyBuffer(h, resp.Body, buf)
	} else {
		for {
			k, rerr := resp.Body.Read(buf)
			n += int64(k)
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				err = rerr
				break
			}
		}
	}
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if n != want {
		return 0, fmt.Errorf("GET %s: got %d bytes, want %d", url, n, want)
	}
	return d, nil
}

// verifyGet fetches url and checks the SHA-256 of its body.
func verifyGet(ctx context.Context, url string, hdr http.Header, size int64, digest string, limit time.Duration) error {
	h := sha256.New()
	if _, err := getURL(ctx, url, hdr, size, h, limit); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("GET %s: SHA-256 %s, want %s", url, got, digest)
	}
	return nil
}

// putBytes PUTs a small body and checks for a 2xx.
func putBytes(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	resp, err := quickClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// sample is the durations of repeated runs of one transfer.
type sample []time.Duration

func (s sample) median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append(sample(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

// mbps is decimal megabytes (10^6 bytes) per second.
func mbps(size int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(size) / d.Seconds() / 1e6
}

func (s sample) rates(size int64) string {
	var parts []string
	for _, d := range s {
		parts = append(parts, fmt.Sprintf("%.0f", mbps(size, d)))
	}
	return strings.Join(parts, ", ")
}
