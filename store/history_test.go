package store

import (
	"context"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestHistoryBounded(t *testing.T) {
	var j Job
	for i := range MaxHistory + 5 {
		j.NoteError(fmt.Sprintf("error %d", i), "transient")
	}
	if len(j.History) != MaxHistory || j.History[0].Text != "error 5" || j.History[MaxHistory-1].Text != fmt.Sprintf("error %d", MaxHistory+4) {
		t.Fatalf("history %d long, from %q to %q", len(j.History), j.History[0].Text, j.History[len(j.History)-1].Text)
	}
	if j.LastError != fmt.Sprintf("error %d", MaxHistory+4) || j.History[0].At.IsZero() || j.History[0].Kind != "transient" {
		t.Errorf("last error %q, first event %+v", j.LastError, j.History[0])
	}
	j.NoteError("", "")
	if j.LastError != "" || len(j.History) != MaxHistory {
		t.Errorf("a cleared error: %q, %d events", j.LastError, len(j.History))
	}
}

// A record written before histories existed loads, and gets one when it is updated.
func TestHistoryOldRecord(t *testing.T) {
	s := openTest(t)
	added := addAll(t, s, discovered("/in", 1))
	id := added[0].Job.ID
	old := fmt.Sprintf(`{"id":%d,"path":"/in/clip-00000.mp4","size":1000,"mod_time":%q,"folder":"/in","provider":"gc","state":"failed","attempts":3,"last_error":"503 from the server","queued_at":%q}`,
		id, t0.Format("2006-01-02T15:04:05.999999999Z07:00"), t0.Format("2006-01-02T15:04:05.999999999Z07:00"))
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketJobs).Put(encodeID(id), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	j, err := s.Get(id)
	if err != nil || j.LastError != "503 from the server" || j.History != nil {
		t.Fatalf("old record: %+v %v", j, err)
	}
	j, err = s.Update(context.Background(), id, func(j *Job) error { j.NoteError("again", "transient"); return nil })
	if err != nil || len(j.History) != 1 {
		t.Fatalf("update: %+v %v", j, err)
	}
	if j, _ = s.Get(id); len(j.History) != 1 || j.History[0].Text != "again" {
		t.Errorf("stored history %+v", j.History)
	}
}

func TestReuploadTakesIdentity(t *testing.T) {
	s := openTest(t)
	files := discovered("/in", 2)
	added := addAll(t, s, files)
	first := added[0].Job
	if _, err := s.Reupload(context.Background(), first.ID, files[0], t0, Event{What: "reupload", Text: "again"}); err == nil {
		t.Fatal("reupload of a queued job's file worked")
	}
	if _, err := s.Update(context.Background(), first.ID, func(j *Job) error { j.State = Done; return nil }); err != nil {
		t.Fatal(err)
	}
	nj, err := s.Reupload(context.Background(), first.ID, files[0], t0, Event{What: "reupload", Text: "again", URL: "https://x/1"})
	if err != nil || nj.ID == first.ID || nj.State != Queued || len(nj.History) != 1 || nj.History[0].URL != "https://x/1" {
		t.Fatalf("reupload: %+v %v", nj, err)
	}
	if j, ok, err := s.Lookup(files[0].Path, files[0].Size, files[0].ModTime); err != nil || !ok || j.ID != nj.ID {
		t.Errorf("the identity names job %d, want the new %d (%v)", j.ID, nj.ID, err)
	}
	if j, ok, _ := s.LatestByPath(files[0].Path); !ok || j.ID != nj.ID {
		t.Errorf("latest by path: %d", j.ID)
	}
	if old, err := s.Get(first.ID); err != nil || old.State != Done {
		t.Errorf("old job: %+v %v", old, err)
	}
	// The old job stays as it was (its identity is the new job's now), and can be deleted.
	if _, err := s.Update(context.Background(), first.ID, func(j *Job) error { j.LastError = "x"; return nil }); err == nil {
		t.Error("the old job was changed to an identity that belongs to the new one")
	}
	if err := s.Delete(first.ID); err != nil {
		t.Fatal(err)
	}
	if j, ok, _ := s.Lookup(files[0].Path, files[0].Size, files[0].ModTime); !ok || j.ID != nj.ID {
		t.Errorf("deleting the old job dropped the new job's identity")
	}
	checkConsistent(t, s) // with the old job gone, every index agrees again
	counts, err := s.CountsByProvider()
	if err != nil || counts["gc"][Queued] != 1 || counts["tus"][Queued] != 1 {
		t.Errorf("counts by provider %v %v", counts, err)
	}
}

// What a /metrics scrape costs in the database with 10,000 jobs.
func BenchmarkCountsByProvider10k(b *testing.B) {
	s := openTest(b)
	addAll(b, s, discovered("/in", 10000))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.CountsByProvider(); err != nil {
			b.Fatal(err)
		}
	}
}

// CountsByProvider's fast path reads the job's own provider and state, not a nested one.
func TestCountsByProviderNested(t *testing.T) {
	s := openTest(t)
	added := addAll(t, s, discovered("/in", 1))
	_, err := s.Update(context.Background(), added[0].Job.ID, func(j *Job) error {
		j.State = Done
		j.Result = &Result{ID: "x", URL: "u", Extra: map[string]string{"provider": "evil", "state": "failed"}}
		j.Note(Event{What: "error", Text: `"provider":"evil2" "state":"queued"`})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountsByProvider()
	if err != nil || len(counts) != 1 || counts["gc"][Done] != 1 {
		t.Errorf("counts %v %v", counts, err)
	}
}
