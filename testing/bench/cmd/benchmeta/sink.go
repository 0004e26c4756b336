package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/raft"
)

// fileSink is a raft.SnapshotSink writing to one file, buffered as raft's
// file snapshot store does, and counting the bytes.
type fileSink struct {
	f *os.File
	w *bufio.Writer
	n int64
}

func newFileSink(path string) (*fileSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create snapshot file: %w", err)
	}
	return &fileSink{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *fileSink) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *fileSink) ID() string { return "bench" }

func (s *fileSink) Cancel() error { return s.f.Close() }

// Close flushes and syncs, as raft's file sink does before it renames the
// snapshot into place.
func (s *fileSink) Close() error {
	if err := s.w.Flush(); err != nil {
		s.f.Close()
		return fmt.Errorf("flush snapshot file: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		s.f.Close()
		return fmt.Errorf("sync snapshot file: %w", err)
	}
	return s.f.Close()
}

// discardSink is a raft.SnapshotSink that keeps nothing: Persist's own
// cost, without the disk.
type discardSink struct{ n int64 }

func (s *discardSink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *discardSink) ID() string                  { return "discard" }
func (s *discardSink) Cancel() error               { return nil }
func (s *discardSink) Close() error                { return nil }

var (
	_ raft.SnapshotSink = (*fileSink)(nil)
	_ raft.SnapshotSink = (*discardSink)(nil)
	_ io.Writer         = (*discardSink)(nil)
)
