package oci

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// uploads are the chunked upload sessions this node took. A session is two
// files in dir: <id>.data, the bytes received so far, and <id>.repo, the
// repository it was opened for. Sessions live on the node that took the
// POST (the Location it answered points back to it), and survive a restart
// of that node; a session is gone once its blob is committed or cancelled.
type uploads struct {
	dir string
	mu  sync.Mutex
	// locks serialize the requests of one session: a PATCH appends at the
	// end the previous one left.
	locks map[string]*sync.Mutex
}

// staleUpload is how old a session may get before start-up removes it:
// clients finish or abandon an upload within minutes.
const staleUpload = 24 * time.Hour

func newUploads(dir string) (*uploads, error) {
	if dir == "" {
		return nil, errors.New("oci: an upload directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("oci: upload directory: %w", err)
	}
	u := &uploads{dir: dir, locks: map[string]*sync.Mutex{}}
	u.removeStale(time.Now().Add(-staleUpload))
	return u, nil
}

// removeStale deletes the files of sessions last written before cutoff.
func (u *uploads) removeStale(cutoff time.Time) {
	_ = filepath.WalkDir(u.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(p)
		}
		return nil
	})
}

// create opens a session for repo and returns its id.
func (u *uploads) create(repo string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("upload id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if err := os.WriteFile(u.path(id, "data"), nil, 0o600); err != nil {
		return "", fmt.Errorf("create upload %s: %w", id, err)
	}
	if err := os.WriteFile(u.path(id, "repo"), []byte(repo), 0o600); err != nil {
		_ = os.Remove(u.path(id, "data"))
		return "", fmt.Errorf("create upload %s: %w", id, err)
	}
	return id, nil
}

func (u *uploads) path(id, kind string) string { return filepath.Join(u.dir, id+"."+kind) }

// validID keeps a client's id from naming any file but a session's.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// open locks session id of repo and returns its data file (positioned at
// its end) and size; release unlocks it. A session of another repository,
// or none, is BLOB_UPLOAD_UNKNOWN.
func (u *uploads) open(id, repo string) (f *os.File, size int64, release func(), err error) {
	unknown := errf(http.StatusNotFound, codeBlobUploadUnknown, "no upload %s in %s", trim(id), repo)
	if !validID(id) {
		return nil, 0, nil, unknown
	}
	u.mu.Lock()
	l := u.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		u.locks[id] = l
	}
	u.mu.Unlock()
	l.Lock()
	unlock := l.Unlock
	owner, err := os.ReadFile(u.path(id, "repo"))
	if err != nil || string(owner) != repo {
		unlock()
		return nil, 0, nil, unknown
	}
	f, err = os.OpenFile(u.path(id, "data"), os.O_RDWR, 0)
	if err != nil {
		unlock()
		return nil, 0, nil, unknown
	}
	size, err = f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		unlock()
		return nil, 0, nil, fmt.Errorf("upload %s: %w", id, err)
	}
	return f, size, func() { f.Close(); unlock() }, nil
}

// remove deletes a session's files. The caller holds its lock.
func (u *uploads) remove(id string) {
	_ = os.Remove(u.path(id, "repo"))
	_ = os.Remove(u.path(id, "data"))
	u.mu.Lock()
	delete(u.locks, id)
	u.mu.Unlock()
}
