package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestDisplayPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/in/a.bin", "/in/a.bin"},
		{"/in/café.bin", "/in/café.bin"},
		{"/in/caf\xe9.bin", `/in/caf\xe9.bin`},
		{"/in/\xff\xfe/x", `/in/\xff\xfe/x`},
		{"/in/\xe2\x82", `/in/\xe2\x82`},                 // a cut-off 3-byte sequence: each byte
		{"\xc3\xa9\xc3", `é\xc3`},                        // valid, then a lone lead byte
		{"/in/\xed\xa0\x80.bin", `/in/\xed\xa0\x80.bin`}, // a UTF-16 surrogate is not UTF-8
		{"", ""},
	}
	for _, c := range cases {
		if got := DisplayPath(c.in); got != c.want {
			t.Errorf("DisplayPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCheckNoticesDeleteAndReplace(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to delete or replace an open file: nothing to notice")
	}
	for _, what := range []string{"delete db", "replace db", "delete lock", "replace lock"} {
		t.Run(what, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Check(); err != nil {
				t.Fatalf("Check of an untouched database: %v", err)
			}
			target := path
			if what == "delete lock" || what == "replace lock" {
				target = LockPath(path)
			}
			if what == "delete db" || what == "delete lock" {
				if err := os.Remove(target); err != nil {
					t.Fatal(err)
				}
			} else {
				// A file of the same name, put in place the way an editor or a restore would.
				other := target + ".new"
				if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(other, target); err != nil {
					t.Fatal(err)
				}
			}
			err = s.Check()
			if !errors.Is(err, ErrReplaced) {
				t.Fatalf("Check after %s: %v, want ErrReplaced", what, err)
			}
			t.Log(err)
		})
	}
}

func TestCheckReadOnly(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to delete or replace an open file: nothing to notice")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	r, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := r.Check(); !errors.Is(err, ErrReplaced) {
		t.Fatalf("read-only Check after delete: %v", err)
	}
}

// The lock file keeps a second writer out even when the first one's database file is gone:
// without it the second would create a new database and both would upload every new file.
func TestSecondOpenAfterDeleteInUse(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to delete or replace an open file: nothing to notice")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second writer opened the database while the first still ran")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	// A reader (chute status) is refused too, and so goes to the daemon's socket.
	if r, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrInUse) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("reader Open: %v, want ErrInUse", err)
	}
	first.Close()
	third, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open once the first closed: %v", err)
	}
	third.Close()
}

// holdEnv names the database a child process (this test binary, see TestHoldStoreInChild)
// opens, deletes and holds until its stdin closes.
const holdEnv = "CHUTE_STORE_TEST_HOLD"

func TestHoldStoreInChild(t *testing.T) {
	path := os.Getenv(holdEnv)
	if path == "" {
		t.Skip("only run as the child of TestLockHeldByAnotherProcess")
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer s.Close()
	if err := os.Remove(path); err != nil {
		fmt.Println("remove:", err)
		return
	}
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// A daemon in another process whose database file was deleted still keeps a second one out.
func TestLockHeldByAnotherProcess(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to delete or replace an open file: nothing to notice")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldStoreInChild$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the child did not delete the database: %v", err)
	}
	s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded while another process holds the lock")
	}
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Open: %v, want ErrInUse", err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s, err = Open(path, Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open after the other process ended: %v", err)
	}
	s.Close()
}

func TestShellQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/var/lib/chute/state.db", "/var/lib/chute/state.db"},
		{"/srv/my state.db", "'/srv/my state.db'"},
		{"/srv/it's.db", `'/srv/it'\''s.db'`},
		{"/srv/caf\xe9/state.db", `$'/srv/caf\xe9/state.db'`},
		{"/srv/caf\xe9/it's\\.db", `$'/srv/caf\xe9/it\'s\\.db'`},
	}
	for _, c := range cases {
		if got := shellQuote(c.in); got != c.want {
			t.Errorf("shellQuote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
