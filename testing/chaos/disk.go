package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// fillerName is the file the disk-full scenario fills a data dir with. The
// corrupter leaves it alone.
const fillerName = "chaos-filler"

// isContentFile tells the files that hold artifact bytes (whole objects or
// shards) from a node's raft state, its temp files and its small
// bookkeeping files, which the corruption scenario leaves alone: it
// corrupts what checksums and parity are there to protect.
func isContentFile(rel string, d fs.DirEntry) bool {
	if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), "chaos-") {
		return false
	}
	for _, seg := range strings.Split(filepath.ToSlash(filepath.Dir(rel)), "/") {
		switch seg {
		case "raft", "snapshots", "tmp":
			return false
		}
	}
	switch filepath.Ext(d.Name()) {
	case ".db", ".json", ".lock", ".tmp":
		return false
	}
	return true
}

// corruptFiles flips flips bytes at random offsets of every content file
// under root and returns the files it changed, relative to root.
func corruptFiles(root string, r *rand.Rand, flips int) ([]string, error) {
	var changed []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking, e.g. a finished temp file
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() || !isContentFile(rel, d) {
			return nil
		}
		ok, err := flipBytes(p, r, flips)
		if err != nil {
			return err
		}
		if ok {
			changed = append(changed, rel)
		}
		return nil
	})
	return changed, err
}

// flipBytes inverts n bytes at random offsets of the file at p; it reports
// false for an empty file.
func flipBytes(p string, r *rand.Rand, n int) (bool, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false, err
	}
	b := make([]byte, 1)
	for range n {
		off := r.Int64N(st.Size())
		if _, err := f.ReadAt(b, off); err != nil {
			return false, err
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			return false, err
		}
	}
	return true, f.Sync()
}

// fillDisk takes every free byte of the file system holding dir with one
// file and returns its path and size.
func fillDisk(dir string) (string, int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	p := filepath.Join(dir, fillerName)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	free := int64(st.Bavail) * st.Bsize
	if free > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, free); err != nil && !errors.Is(err, syscall.ENOSPC) {
			return p, 0, fmt.Errorf("fallocate %d bytes in %s: %w", free, dir, err)
		}
	}
	// Whatever fallocate left (rounding, blocks freed meanwhile) goes too.
	buf := make([]byte, 64<<10)
	if _, err := f.Seek(0, 2); err != nil {
		return p, 0, err
	}
	for i := 0; i < 1<<14; i++ {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			return p, 0, err
		}
	}
	st2, err := f.Stat()
	if err != nil {
		return p, 0, err
	}
	return p, st2.Size(), nil
}
