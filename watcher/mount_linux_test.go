package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A file system mounted over a watched folder gives no event; the lookup notices the folder
// is another directory and watches the new one, and again once it is unmounted.
func TestFolderMountedOver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := filepath.Join(t.TempDir(), "inbox")
	mkdir(t, dir)
	rec := &recorder{}
	h := start(t, []Folder{{Path: dir, Settle: 50 * time.Millisecond}}, Options{Rescan: -1, Lookup: 100 * time.Millisecond, Observer: rec}, nil)
	h.waitLog("watching")
	under := filepath.Join(dir, "under.bin")
	writeFile(t, under, 1)
	h.waitReported(under, 1)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			mounted = false
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount: %v %s", err, out)
			}
		}
	}
	t.Cleanup(unmount)
	h.waitLog("watched folder is another directory now", "folder="+dir)
	rec.waitState(t, "the mounted folder watched", func(s []FolderState) bool { return s[0].Err == nil && s[0].Dirs == 1 })
	on := filepath.Join(dir, "on the mount.bin")
	writeFile(t, on, 2)
	h.waitReported(on, 1)
	unmount()
	h.waitLogCount(2, "watched folder is another directory now", "folder="+dir)
	rec.waitState(t, "the folder watched again after the unmount", func(s []FolderState) bool { return s[0].Err == nil && s[0].Dirs == 1 })
	after := filepath.Join(dir, "after.bin")
	writeFile(t, after, 3)
	h.waitReported(after, 1)
	h.wantCount(on, 1)
}
