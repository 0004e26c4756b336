//go:build !unix

package pullcache

import (
	"errors"
	"os"
)

// mapFile is not done here: reads go through the file.
func mapFile(*os.File, int64) (*mapping, error) {
	return nil, errors.New("no memory mapping on this platform")
}

func unmap([]byte) error { return nil }
