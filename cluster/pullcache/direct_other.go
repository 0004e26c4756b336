//go:build !linux

package pullcache

import (
	"errors"
	"os"
)

// openDirect is not done here: fills go through the page cache.
func openDirect(string) (*os.File, error) { return nil, errors.New("no O_DIRECT on this platform") }

func alignedBlock() *[]byte { b := make([]byte, blockSize); return &b }
