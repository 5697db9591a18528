package watcher

import (
	"path/filepath"
	"time"
)

// reportedFile is what the watcher remembers of a file it reported.
type reportedFile struct {
	folder int
	size   int64
	mtime  time.Time
	gen    uint64 // last full rescan that saw it (or the one current when it was reported)
}

// same reports whether the file still has the reported size and mtime.
func (rf reportedFile) same(size int64, mtime time.Time) bool {
	return rf.size == size && rf.mtime.Equal(mtime)
}

// reportedSet holds the reported files grouped by directory, so that
// forgetting a removed directory costs O(directories), not O(files).
type reportedSet struct {
	byDir map[string]map[string]reportedFile // dir -> base name -> file
	n     int
}

func newReportedSet() *reportedSet {
	return &reportedSet{byDir: make(map[string]map[string]reportedFile)}
}

func (s *reportedSet) get(p string) (reportedFile, bool) {
	rf, ok := s.byDir[filepath.Dir(p)][filepath.Base(p)]
	return rf, ok
}

func (s *reportedSet) put(p string, rf reportedFile) {
	dir, base := filepath.Dir(p), filepath.Base(p)
	m := s.byDir[dir]
	if m == nil {
		m = make(map[string]reportedFile)
		s.byDir[dir] = m
	}
	if _, ok := m[base]; !ok {
		s.n++
	}
	m[base] = rf
}

func (s *reportedSet) remove(p string) {
	dir, base := filepath.Dir(p), filepath.Base(p)
	m := s.byDir[dir]
	if _, ok := m[base]; !ok {
		return
	}
	delete(m, base)
	s.n--
	if len(m) == 0 {
		delete(s.byDir, dir)
	}
}

// removeDirs forgets every file whose directory satisfies drop.
func (s *reportedSet) removeDirs(drop func(dir string) bool) {
	for dir, m := range s.byDir {
		if drop(dir) {
			s.n -= len(m)
			delete(s.byDir, dir)
		}
	}
}

// prune forgets every file for which stale is true.
func (s *reportedSet) prune(stale func(reportedFile) bool) {
	for dir, m := range s.byDir {
		for base, rf := range m {
			if stale(rf) {
				delete(m, base)
				s.n--
			}
		}
		if len(m) == 0 {
			delete(s.byDir, dir)
		}
	}
}

func (s *reportedSet) len() int { return s.n }
