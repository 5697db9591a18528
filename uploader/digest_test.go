package uploader_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/chute-dev/chute/uploader"
)

// The parallel digest pass gives the digests of the whole file for sizes around its piece
// size (1 MiB), with one digest or two, and stops when its context ends.
func TestComputeDigestsPieces(t *testing.T) {
	for _, size := range []int{0, 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 5<<20 + 3} {
		content := pattern(size)
		f := openTemp(t, content)
		m, s := md5.Sum(content), sha256.Sum256(content)
		for _, need := range [][]uploader.Digest{{uploader.MD5}, {uploader.SHA256, uploader.MD5, uploader.MD5}} {
			got, err := uploader.ComputeDigests(context.Background(), f, need)
			if err != nil {
				t.Fatal(err)
			}
			if got[uploader.MD5] != hex.EncodeToString(m[:]) {
				t.Errorf("%d bytes, %v: md5 %s", size, need, got[uploader.MD5])
			}
			if len(need) > 1 && got[uploader.SHA256] != hex.EncodeToString(s[:]) {
				t.Errorf("%d bytes, %v: sha256 %s", size, need, got[uploader.SHA256])
			}
		}
	}
	f := openTemp(t, pattern(3<<20))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := uploader.ComputeDigests(ctx, f, []uploader.Digest{uploader.MD5, uploader.SHA256}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled digest pass returned %v", err)
	}
}

// A file cut short under its digest pass is an error of the pass, never a crash and never a
// digest: where the pass hashes the file's mapped pages, the fault on a page past the new
// end is caught; where it reads, the read comes up short.
func TestComputeDigestsFileCutShort(t *testing.T) {
	for _, cut := range []int64{0, 3<<20 + 5, 8<<20 - 1} {
		f := openTemp(t, pattern(8<<20))
		if err := os.Truncate(f.Path, cut); err != nil {
			t.Fatal(err)
		}
		sums, err := uploader.ComputeDigests(context.Background(), f, []uploader.Digest{uploader.SHA256, uploader.MD5})
		if err == nil {
			t.Fatalf("cut to %d: digests %v of a file shorter than it was opened", cut, sums)
		}
	}
}
