//go:build !unix

package uploader

import "os"

// duplicate returns nil: file bodies are copied through a buffer on this platform.
func duplicate(*os.File) *os.File { return nil }
