package uploadertest

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

// RandomHex returns n random bytes in hex: an emulator's tokens.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomID returns n random letters and digits: an emulator's ids and slugs, in the shape
// the services give them ("FnlHXwA16ZMxmUr").
func RandomID(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// NewClient returns a client with the default options whose idle connections are closed
// when the test ends.
func NewClient(t testing.TB) *uploader.Client {
	c := uploader.NewClient(uploader.ClientOptions{})
	t.Cleanup(c.CloseIdle)
	return c
}
