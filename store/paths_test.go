package store

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Paths that are not valid UTF-8: a Latin-1 name, a file below such a folder, a lone
// continuation byte, a cut-off sequence, and a name that holds the replacement character itself.
var bytePaths = []struct{ folder, path string }{
	{"/in", "/in/caf\xe9.bin"},
	{"/in/r\xe9sum\xe9s", "/in/r\xe9sum\xe9s/a.bin"},
	{"/in", "/in/\x80x"},
	{"/in", "/in/\xe2\x82"},
	{"/in", "/in/\xef\xbf\xbd.bin"}, // valid UTF-8 (U+FFFD): must stay distinct from \xff
	{"/in", "/in/\xff.bin"},
}

func TestPathBytesRoundTrip(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var files []NewJob
	for i, p := range bytePaths {
		files = append(files, NewJob{Path: p.path, Size: int64(10 + i), ModTime: t0, Folder: p.folder, Provider: "tus"})
	}
	added := addAll(t, s, files)
	for i, a := range added {
		if !a.Added {
			t.Fatalf("%q: not added (taken for the job of another path?)", files[i].Path)
		}
	}
	check := func(stage string, i int, j Job) {
		t.Helper()
		if j.Path != files[i].Path || j.Folder != files[i].Folder {
			t.Errorf("%s: got path %q folder %q, want %q %q", stage, j.Path, j.Folder, files[i].Path, files[i].Folder)
		}
	}
	for i, a := range added {
		id := a.Job.ID
		j, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		check("Get", i, j)
		j, ok, err := s.Lookup(files[i].Path, files[i].Size, files[i].ModTime)
		if err != nil || !ok {
			t.Fatalf("Lookup(%q): %v %v", files[i].Path, ok, err)
		}
		check("Lookup", i, j)
		j, ok, err = s.LatestByPath(files[i].Path)
		if err != nil || !ok || j.ID != id {
			t.Fatalf("LatestByPath(%q): %d %v %v", files[i].Path, j.ID, ok, err)
		}
		check("LatestByPath", i, j)
		j, err = s.Update(ctx, id, func(j *Job) error {
			j.State, j.Attempts = Uploading, 1
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check("Update's answer", i, j)
		if j, err = s.Get(id); err != nil || j.State != Uploading {
			t.Fatalf("Get after Update: %v %v", j.State, err)
		}
		check("Get after Update", i, j)
	}
	all, err := s.List(Filter{})
	if err != nil || len(all) != len(files) {
		t.Fatalf("List: %d jobs, %v", len(all), err)
	}
	for i, j := range all {
		check("List", i, j)
	}
	up, err := s.List(Filter{States: []State{Uploading}})
	if err != nil || len(up) != len(files) {
		t.Fatalf("List(uploading): %d jobs, %v", len(up), err)
	}
	for i, j := range up {
		check("List(uploading)", i, j)
	}
	checkConsistent(t, s)

	// And after reopening, through the file.
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for i, a := range added {
		j, err := s2.Get(a.Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("Get after reopen", i, j)
	}
}

func TestJobJSONShape(t *testing.T) {
	j := Job{ID: 3, Path: "/in/caf\xe9.bin", Folder: "/in", Size: 4, ModTime: t0, Provider: "tus", State: Done, QueuedAt: t0}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["path"] != `/in/caf\xe9.bin` || m["path_bytes"] != "L2luL2NhZukuYmlu" || m["folder"] != "/in" {
		t.Errorf("stored as %s", b)
	}
	if _, ok := m["folder_bytes"]; ok {
		t.Errorf("a valid folder got folder_bytes: %s", b)
	}
	var back Job
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !sameJob(back, j) {
		t.Errorf("round trip: %+v, want %+v", back, j)
	}

	// A valid path is stored exactly as schema version 1 always stored it.
	j.Path = "/in/café.bin"
	b, err = json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "_bytes") || !strings.Contains(string(b), `"path":"/in/café.bin"`) {
		t.Errorf("valid path stored as %s", b)
	}
}

// A database written before paths were kept as bytes (schema version 1, plain strings) still
// loads, through every read, and takes updates.
func TestOldJobRecordsLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Exactly what the encoder of schema version 1 wrote for a done job.
	old := `{"id":1,"path":"/srv/in/clip.mp4","size":3,"mod_time":"2026-11-21T10:00:00.123456789Z","folder":"/srv/in","provider":"tus","state":"done","attempts":1,"sent":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","result":{"id":"u1","url":"http://127.0.0.1/files/u1"},"queued_at":"2026-11-21T10:00:00Z","started_at":"2026-11-21T10:00:01Z","finished_at":"2026-11-21T10:00:02Z"}`
	mtime := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		if err := b.jobs.SetSequence(1); err != nil {
			return err
		}
		for _, put := range []struct {
			bk   *bolt.Bucket
			k, v []byte
		}{
			{b.jobs, encodeID(1), []byte(old)},
			{b.state, stateKey(Done, 1), nil},
			{b.identity, identityKey("/srv/in/clip.mp4", 3, mtime), encodeID(1)},
			{b.path, pathKey("/srv/in/clip.mp4", 1), nil},
		} {
			if err := put.bk.Put(put.k, put.v); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open of a schema 1 database: %v", err)
	}
	defer s.Close()
	want := Job{
		ID: 1, Path: "/srv/in/clip.mp4", Size: 3, ModTime: mtime, Folder: "/srv/in", Provider: "tus",
		State: Done, Attempts: 1, Sent: 3, SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		Result:   &Result{ID: "u1", URL: "http://127.0.0.1/files/u1"},
		QueuedAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), StartedAt: time.Date(2026, 11, 21, 10, 0, 1, 0, time.UTC),
		FinishedAt: time.Date(2026, 11, 21, 10, 0, 2, 0, time.UTC),
	}
	j, err := s.Get(1)
	if err != nil || !sameJob(j, want) {
		t.Fatalf("Get: %+v %v\nwant %+v", j, err, want)
	}
	if j, ok, err := s.Lookup(want.Path, 3, mtime); err != nil || !ok || !sameJob(j, want) {
		t.Fatalf("Lookup: %+v %v %v", j, ok, err)
	}
	if j, ok, err := s.LatestByPath(want.Path); err != nil || !ok || !sameJob(j, want) {
		t.Fatalf("LatestByPath: %+v %v %v", j, ok, err)
	}
	if all, err := s.List(Filter{States: []State{Done}}); err != nil || len(all) != 1 || !sameJob(all[0], want) {
		t.Fatalf("List: %+v %v", all, err)
	}
	j, err = s.Update(context.Background(), 1, func(j *Job) error { j.State = Queued; return nil })
	if err != nil || j.Path != want.Path || j.SHA256 != want.SHA256 {
		t.Fatalf("Update: %+v %v", j, err)
	}
	added := addAll(t, s, []NewJob{{Path: "/srv/in/caf\xe9.mp4", Size: 1, ModTime: t0, Folder: "/srv/in", Provider: "tus"}})
	if added[0].Job.ID != 2 {
		t.Errorf("new job after an old one got ID %d", added[0].Job.ID)
	}
	checkConsistent(t, s)
}
