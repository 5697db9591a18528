// Package fsx holds the few file-system helpers the watcher and the engine share.
package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNotRegular is returned (wrapped) by OpenRegular for anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens path for reading only if it is a regular file. A FIFO, a device or a
// socket is refused without blocking: the open itself does not wait for a writer (it is
// non-blocking where the platform allows), and the type is checked on the open handle, so a
// file swapped for a FIFO between a stat and the open cannot hang the caller.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, nil, err
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	if err := clearNonBlocking(f); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}
