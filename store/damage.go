package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is returned (wrapped) when the database file is damaged: cut short, overwritten
// in places, or not a database at all. chute cannot use it; the error says what to do.
var ErrDamaged = errors.New("state database is damaged")

// damagedError names the file, what was found and what to do.
type damagedError struct {
	path   string
	detail string
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("state database %s is damaged (%s): move it aside (mv %s %s) and start chute again; "+
		"files whose sidecars say done are not uploaded again",
		DisplayPath(e.path), e.detail, shellQuote(e.path), shellQuote(e.path+".damaged"))
}

func (e *damagedError) Unwrap() error { return ErrDamaged }

func (s *Store) damaged(format string, args ...any) error {
	return &damagedError{path: s.path, detail: fmt.Sprintf(format, args...)}
}

// shellQuote returns p as one word for a POSIX shell, quoted only when it needs to be; a path
// that is not valid UTF-8 gets ANSI-C quotes ($'...', bash, zsh, ksh), in which \xNN is a byte.
func shellQuote(p string) string {
	safe := p != ""
	for i := 0; i < len(p) && safe; i++ {
		c := p[i]
		safe = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/._-+:,@%=", c) >= 0
	}
	switch {
	case safe:
		return p
	case utf8.ValidString(p):
		return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	esc := strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(p)
	return "$'" + DisplayPath(esc) + "'"
}

// asDamaged turns err into a damagedError when it says the file is damaged: bbolt's answers
// for a file that is not a valid database, and records that do not decode.
func (s *Store) asDamaged(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrDamaged):
		return err
	case errors.Is(err, errCorrupt):
		return s.damaged("%v", err)
	}
	for _, d := range []error{berrors.ErrInvalid, berrors.ErrChecksum, berrors.ErrVersionMismatch, berrors.ErrInvalidMapping} {
		if errors.Is(err, d) {
			return s.damaged("bbolt: %v", d)
		}
	}
	return err
}

// guard turns what reading a damaged file does into an error wrapping ErrDamaged: a page
// beyond the end of a file cut short faults (SIGBUS), a page of garbage makes bbolt panic or
// read out of bounds. Every method that reads pages starts with
//
//	defer s.guard(debug.SetPanicOnFault(true), &err, write)
//
// which makes a fault on THIS goroutine a panic, and recovers it (and bbolt's panics) here;
// bbolt's View and Update roll their transaction back as the panic passes, so the Store stays
// usable for Close. It also maps bbolt's and the decoder's errors of damage. Faults on another
// goroutine are not covered: the pages must be read on the goroutine that called the method.
//
// write says the method writes: bbolt may then have left its write lock held (the rollback of a
// write transaction reads the file again), so Close must not wait for it.
func (s *Store) guard(oldPanicOnFault bool, err *error, write bool) {
	debug.SetPanicOnFault(oldPanicOnFault)
	if p := recover(); p != nil {
		if fp, ok := p.(fnPanic); ok {
			panic(fp.value) // the caller's own function panicked: not the file's fault
		}
		d := &damagedError{path: s.path, detail: fmt.Sprintf("reading it failed: %v", p)}
		if write {
			s.writeBroken.Store(true)
		}
		s.broken.CompareAndSwap(nil, d)
		*err = d
		return
	}
	*err = s.asDamaged(*err)
}

// brokenErr is the damage a method met before, if any.
func (s *Store) brokenErr() error {
	if d := s.broken.Load(); d != nil {
		return d
	}
	return nil
}

// fnPanic carries a panic of an Update's fn through guard untouched.
type fnPanic struct{ value any }

// verify reads every key and value of every bucket once, decodes every job and checks that
// every index entry is well formed and names a job, so that damage shows at Open, as an error,
// rather than later, as a crash or a lost file. It runs in a transaction on the goroutine that
// called Open (under guard); bbolt's tx.Check is not used because it reads the pages on a
// goroutine of its own, where a fault would crash the process.
func (s *Store) verify(tx *bolt.Tx) error {
	var sum byte // read every byte, so that a page beyond the end faults here
	var walk func(name []byte, b *bolt.Bucket) error
	walk = func(name []byte, b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			for _, x := range k {
				sum ^= x
			}
			if v == nil {
				nested := b.Bucket(k)
				if nested == nil {
					return s.damaged("bucket %s: key %q has neither a value nor a bucket", name, k)
				}
				if err := walk(k, nested); err != nil {
					return err
				}
				continue
			}
			for _, x := range v {
				sum ^= x
			}
		}
		return nil
	}
	if err := tx.ForEach(walk); err != nil {
		return err
	}
	runtime.KeepAlive(sum)

	b := bucketsOf(tx)
	jobs := make(map[uint64]struct{})
	c := b.jobs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || v == nil {
			return s.damaged("bucket jobs: a key of %d bytes", len(k))
		}
		j, err := decodeJob(decodeID(k), v)
		if err != nil {
			return s.damaged("%v", err)
		}
		if !j.State.Valid() || j.Path == "" {
			return s.damaged("job %d: state %q, path %q", j.ID, j.State, DisplayPath(j.Path))
		}
		jobs[j.ID] = struct{}{}
	}
	known := func(bucket string, k []byte, id uint64) error {
		if _, ok := jobs[id]; !ok {
			return s.damaged("bucket %s: key %q names job %d, which does not exist", bucket, k, id)
		}
		return nil
	}
	c = b.state.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 || !State(k[:i]).Valid() {
			return s.damaged("bucket by_state: a malformed key %q", k)
		}
		if err := known("by_state", k, decodeID(k[i+1:])); err != nil {
			return err
		}
	}
	c = b.identity.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) < 18 || k[len(k)-17] != 0 || len(v) != 8 {
			return s.damaged("bucket by_identity: a malformed entry %q", k)
		}
		if err := known("by_identity", k, decodeID(v)); err != nil {
			return err
		}
	}
	c = b.path.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 10 || k[len(k)-9] != 0 {
			return s.damaged("bucket by_path: a malformed key %q", k)
		}
		if err := known("by_path", k, decodeID(k[len(k)-8:])); err != nil {
			return err
		}
	}
	return nil
}

// bbolt's file format (version 2, unchanged since boltdb): what preflight reads of it.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	boltMetaSize     = 64 // magic, version, page size, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	boltFreelistFlag = 0x10
	boltNoFreelist   = ^uint64(0)
)

// boltMeta is what preflight needs of a meta page.
type boltMeta struct {
	pageSize                   int64
	root, freelist, pgid, txid uint64
}

// readMeta reads and validates the meta page at off the way bbolt does (magic, version,
// checksum). The file is in the machine's byte order, as bbolt writes it.
func readMeta(f *os.File, off int64) (boltMeta, error) {
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}, fmt.Errorf("cannot read it: %w", err)
	}
	m, ne := buf[boltPageHeader:], binary.NativeEndian
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, errors.New("not a bbolt meta page")
	case ne.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("bbolt format version %d", ne.Uint32(m[4:]))
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{
		pageSize: int64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// preflight checks, with plain reads and before bbolt maps the file, what bbolt.Open reads
// of it: the meta pages, the file's length against the pages they count, and the freelist.
// bbolt faults (a page beyond the end) or panics (a freelist page of garbage) on these inside
// Open, where nothing can release the mapping and, with it, the file's lock; everything else
// bbolt reads in transactions, which guard recovers cleanly. A missing file is not checked (Open
// creates it), nor one bbolt will refuse anyway (not a regular file, unreadable).
func (s *Store) preflight() error {
	f, err := os.Open(s.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return nil
	}
	size := info.Size()
	if size == 0 {
		// bbolt would make a new database of it; an empty file where a database was is one that
		// lost its content (a crash before the filesystem wrote it, a truncation): say so.
		return s.damaged("the file is empty")
	}
	// Page 0 says the page size, and so where page 1 is; without it, bbolt assumes the OS's.
	m0, err0 := readMeta(f, 0)
	pageSize := int64(os.Getpagesize())
	if err0 == nil {
		pageSize = m0.pageSize
	}
	m1, err1 := readMeta(f, pageSize)
	var m boltMeta
	switch {
	case err0 != nil && err1 != nil:
		return s.damaged("neither meta page is valid: page 0: %v; page 1: %v", err0, err1)
	case err0 != nil:
		m = m1
	case err1 != nil || m0.txid >= m1.txid:
		m = m0
	default:
		m = m1
	}
	ps := m.pageSize
	switch {
	case ps < 512 || ps > 1<<20 || ps&(ps-1) != 0:
		return s.damaged("a page size of %d", ps)
	case m.pgid < 4 || m.pgid > uint64(math.MaxInt64/ps):
		return s.damaged("a page count of %d", m.pgid)
	case size < int64(m.pgid)*ps:
		return s.damaged("cut short: %d bytes, and its %d pages need %d", size, m.pgid, int64(m.pgid)*ps)
	case m.root < 2 || m.root >= m.pgid:
		return s.damaged("the root page %d is outside pages 2 to %d", m.root, m.pgid-1)
	case m.freelist == boltNoFreelist:
		return s.damaged("it has no freelist (chute always writes one)")
	case m.freelist < 2 || m.freelist >= m.pgid:
		return s.damaged("the freelist page %d is outside pages 2 to %d", m.freelist, m.pgid-1)
	}
	head := make([]byte, boltPageHeader+8)
	if _, err := f.ReadAt(head, int64(m.freelist)*ps); err != nil {
		return s.damaged("reading the freelist page: %v", err)
	}
	ne := binary.NativeEndian
	id, flags, count, overflow := ne.Uint64(head), ne.Uint16(head[8:]), uint64(ne.Uint16(head[10:])), uint64(ne.Uint32(head[12:]))
	if id != m.freelist || flags != boltFreelistFlag {
		return s.damaged("page %d is not the freelist (id %d, flags %#x)", m.freelist, id, flags)
	}
	if m.freelist+overflow >= m.pgid {
		return s.damaged("the freelist runs past the last page")
	}
	first := uint64(0)
	if count == 0xFFFF { // the real count is the first element
		count, first = ne.Uint64(head[boltPageHeader:]), 1
	}
	span := (overflow + 1) * uint64(ps)
	if count > span/8 || boltPageHeader+(first+count)*8 > span {
		return s.damaged("the freelist counts %d pages, more than it holds", count)
	}
	list := make([]byte, (first+count)*8)
	if _, err := f.ReadAt(list, int64(m.freelist)*ps+boltPageHeader); err != nil {
		return s.damaged("reading the freelist: %v", err)
	}
	seen := make(map[uint64]bool, count)
	for i := first; i < first+count; i++ {
		p := ne.Uint64(list[i*8:])
		if p < 2 || p >= m.pgid || seen[p] {
			return s.damaged("the freelist names page %d (pages are 2 to %d, each once)", p, m.pgid-1)
		}
		seen[p] = true
	}
	return nil
}
