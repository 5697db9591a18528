package uploadertest

import (
	"bufio"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// RandomFile writes size pseudo-random bytes to path (incompressible, no sparse holes) and
// syncs them, so that their write-back does not slow the first upload a benchmark measures.
func RandomFile(tb testing.TB, path string, size int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{1}), size); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// PeakRSS is this process's peak resident set (VmHWM) in bytes, 0 where /proc has none.
func PeakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// ResetPeakRSS starts VmHWM again from the current RSS (Linux: clear_refs 5; elsewhere
// nothing), so that PeakRSS measures what follows.
func ResetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchFile writes bench.mp4 in b's temporary folder: $CHUTE_BENCH_MB MiB (defaultMB when
// unset) of random bytes, and returns its path and size.
func BenchFile(b *testing.B, defaultMB int) (string, int64) {
	b.Helper()
	mb := defaultMB
	if v, err := strconv.Atoi(os.Getenv("CHUTE_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	path := filepath.Join(b.TempDir(), "bench.mp4")
	RandomFile(b, path, int64(mb)<<20)
	return path, int64(mb) << 20
}
