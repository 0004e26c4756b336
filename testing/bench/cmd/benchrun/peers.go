package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// peerServer is another object store the rows also run against, started
// from a binary the user gave (BENCH_MINIO, BENCH_SEAWEEDFS; the bench
// never downloads one). Its objects are plain HTTP GETs and PUTs at
// base+prefix+"/"+key, unsigned.
type peerServer struct {
	name    string // minio, seaweedfs
	p       *proc
	base    string // http://127.0.0.1:port
	prefix  string // "/bench": MinIO's bucket, SeaweedFS's filer directory
	version string
	// setup says what the server does before it answers a PUT, for the
	// report.
	setup string
}

func (s *peerServer) url(key string) string { return s.base + s.prefix + "/" + key }

func (s *peerServer) stop() {
	if s != nil && s.p != nil {
		s.p.stop(syscall.SIGTERM, 15*time.Second)
	}
}

// The MinIO root user the bench creates; it signs only the bucket's
// creation and its policy.
const (
	minioUser     = "pierbench"
	minioPassword = "pierbench-secret-0"
	minioBucket   = "bench"
)

// startMinio runs one MinIO process with 4 drives under work, erasure
// coded EC:2 (2 data + 2 parity per object), on 127.0.0.1, creates the
// bucket and lets anonymous clients GET and PUT objects in it.
func startMinio(ctx context.Context, bin, work string) (*peerServer, error) {
	dir := filepath.Join(work, "minio")
	for i := 1; i <= 4; i++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	argv := []string{bin, "server", "--quiet",
		"--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console),
		"--certs-dir", filepath.Join(dir, "certs"),
		// MinIO's own expansion: four drives, one erasure set.
		filepath.Join(dir, "d{1...4}")}
	p, err := startProcEnv("minio", dir, filepath.Join(dir, "minio.log"), []string{
		"MINIO_ROOT_USER=" + minioUser,
		"MINIO_ROOT_PASSWORD=" + minioPassword,
		"MINIO_STORAGE_CLASS_STANDARD=EC:2",
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// MinIO refuses drives on the root file system (a guard against
		// filling / in production) unless told a size below which a
		// drive counts as the root: the work dir is on / here. Unlike
		// MINIO_CI_CD, this changes nothing else (CI mode shrinks its
		// buffer pool).
		"MINIO_ROOTDRIVE_THRESHOLD_SIZE=1B",
		"HOME=" + dir,
	}, argv...)
	if err != nil {
		return nil, err
	}
	s := &peerServer{name: "minio", p: p, base: fmt.Sprintf("http://127.0.0.1:%d", port), prefix: "/" + minioBucket,
		version: bin + ": " + firstLine(cmdOut(ctx, bin, "--version")),
		setup: "one process, 4 drives in the work dir, EC:2 (2 data + 2 parity shards per object, 2x the bytes; " +
			"objects under 128 KiB inlined in xl.meta on all 4); part files written O_DIRECT and fdatasync'd, " +
			"xl.meta synced, before the answer"}
	if err := waitHTTP(ctx, quickClient, s.base+"/minio/health/ready", http.StatusOK, p, 60*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("minio: %w\n%s", err, p.tail(20))
	}
	sg := sigV4{access: minioUser, secret: minioPassword, region: "us-east-1"}
	// /minio/health/ready answers before the object layer is up; until
	// it is, S3 calls get 503 XMinioServerNotInitialized.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s3Call(ctx, sg, http.MethodPut, s.base+"/"+minioBucket, nil)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "503") || time.Now().After(deadline) || ctx.Err() != nil || p.exited() {
			s.stop()
			return nil, fmt.Errorf("minio: create bucket: %w\n%s", err, p.tail(20))
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},`+
		`"Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, minioBucket)
	if err := s3Call(ctx, sg, http.MethodPut, s.base+"/"+minioBucket+"?policy", []byte(policy)); err != nil {
		s.stop()
		return nil, fmt.Errorf("minio: set the anonymous read/write policy: %w", err)
	}
	// The policy works for the unsigned requests the loads make.
	probe := s.url("probe")
	if err := putBytes(ctx, probe, []byte("probe")); err != nil {
		s.stop()
		return nil, fmt.Errorf("minio: anonymous PUT after the policy: %w", err)
	}
	if err := checkSmall(ctx, probe, []byte("probe")); err != nil {
		s.stop()
		return nil, fmt.Errorf("minio: anonymous GET after the policy: %w", err)
	}
	return s, nil
}

// s3Call sends one signed request and wants a 2xx.
func s3Call(ctx context.Context, sg sigV4, method, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	sg.sign(req, hex.EncodeToString(sum[:]), time.Now())
	resp, err := quickClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// startSeaweed runs `weed server` (master, volume server and filer in one
// process) with its data in the work dir, every port on 127.0.0.1, and
// the bench's objects under the filer's /bench directory.
func startSeaweed(ctx context.Context, bin, work string) (*peerServer, error) {
	dir := filepath.Join(work, "seaweedfs")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	var ports [6]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	argv := []string{bin, "server",
		"-dir=" + filepath.Join(dir, "data"),
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
		"-filer", fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		"-filer.localSocket=" + filepath.Join(dir, "filer.sock"),
		// Stop at once on SIGTERM (the default waits 10 s for clients to
		// notice the volume server going).
		"-volume.preStopSeconds=0",
		"-master.volumeSizeLimitMB=4096",
	}
	p, err := startProcEnv("seaweedfs", dir, filepath.Join(dir, "weed.log"), []string{"HOME=" + dir}, argv...)
	if err != nil {
		return nil, err
	}
	s := &peerServer{name: "seaweedfs", p: p, base: fmt.Sprintf("http://127.0.0.1:%d", ports[4]), prefix: "/bench",
		version: bin + ": " + firstLine(cmdOut(ctx, bin, "version")),
		setup: "weed server: master, volume server and filer in one process; filer HTTP API (files over 4 MiB cut into 4 MiB chunks " +
			"on the volume server), replication 000 (one copy), no erasure coding, no fsync before the answer (its default)"}
	// The filer answers a directory listing once it is up; a write needs
	// the volume server registered with the master too, so probe a PUT.
	if err := waitHTTP(ctx, quickClient, s.base+"/", http.StatusOK, p, 60*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("seaweedfs: %w\n%s", err, p.tail(20))
	}
	probe := s.url("probe")
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := putBytes(ctx, probe, []byte("probe"))
		if err == nil {
			err = checkSmall(ctx, probe, []byte("probe"))
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil || p.exited() {
			s.stop()
			return nil, fmt.Errorf("seaweedfs: no working PUT and GET within 60s: %w\n%s", err, p.tail(20))
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return s, nil
}

// startProcEnv is startProc with extra environment variables.
func startProcEnv(name, dir, logPath string, env []string, argv ...string) (*proc, error) {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("%s binary %s: %w", name, argv[0], err)
	}
	return startProcWith(name, dir, logPath, append(os.Environ(), env...), argv...)
}
