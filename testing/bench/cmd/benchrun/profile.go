package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profile fetches a CPU profile of every live node over the next secs
// seconds (the nodes run with --pprof when -profile is set), written to
// <profile dir>/<phase>-<node>.pprof, and returns a function that waits
// for them (bounded). Go's profiler cannot be stopped early from outside,
// so a phase shorter than secs is profiled with some idle time after it;
// the profile's samples are CPU time, so idle time adds nothing to them.
// Without -profile it does nothing.
func (b *bench) profile(phase string, secs int) (wait func()) {
	if b.cfg.profileDir == "" || secs < 1 {
		return func() {}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for _, nd := range b.cl.nodes {
		if nd.down {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(b.cfg.profileDir, fmt.Sprintf("%s-%s.pprof", phase, nd.id))
			if err := fetchProfile(b.ctx, nd.base, secs, path); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("profile %s of %s: %v", phase, nd.id, err))
				mu.Unlock()
			}
		}()
	}
	return func() {
		wg.Wait()
		for _, e := range errs {
			b.rep.note("%s", e)
		}
	}
}

func fetchProfile(ctx context.Context, base string, secs int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
