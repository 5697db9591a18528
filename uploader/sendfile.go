package uploader

import (
	"io"
	"net"
	"os"
	"sync"
)

// sendFileChunk is how much of a file one sendfile call is asked to send: progress is told
// and the connection's idle deadline pushed forward between chunks.
const sendFileChunk = 8 << 20

// zeroCopy is a File's second descriptor for the kernel to send from (sendfile on Linux and
// the BSDs), which reads from the descriptor's file offset; the mutex keeps two bodies of
// the same file from moving that offset under each other.
type zeroCopy struct {
	mu   sync.Mutex
	once sync.Once
	src  *os.File // nil: the platform cannot (or the descriptor could not be duplicated)
}

// sendSource returns the descriptor to send f's bytes from, or nil when f's bytes must go
// through ReadAt: something observes them (the engine's inline SHA-256), or the platform has
// no way to send a file.
func (f *File) sendSource() *os.File {
	if f.observe != nil || f.f == nil {
		return nil
	}
	f.zc.once.Do(func() {
		src := duplicate(f.f)
		f.zc.mu.Lock()
		f.zc.src = src
		f.zc.mu.Unlock()
	})
	f.zc.mu.Lock()
	defer f.zc.mu.Unlock()
	return f.zc.src // nil once closed: the transport may still write a body after Close
}

// closeZeroCopy closes the second descriptor, if there is one; none is made after it.
func (f *File) closeZeroCopy() {
	f.zc.once.Do(func() {}) // first, outside the lock: a duplicate being made finishes
	f.zc.mu.Lock()
	defer f.zc.mu.Unlock()
	if f.zc.src != nil {
		f.zc.src.Close()
		f.zc.src = nil
	}
}

// sendFile sends a FileBody's section on a plain TCP connection without copying it through
// chute: the kernel reads the page cache and writes the socket (sendfile), which leaves a
// core free for the SHA-256 the engine computes beside the upload. net/http hands the body
// over as io.Copy(conn, io.LimitReader(body, ContentLength)) once its buffer of headers is
// flushed; handled is false for any other reader (the caller then copies). touch pushes the
// connection's idle deadline forward; the kernel's send obeys that deadline.
func sendFile(conn net.Conn, r io.Reader, touch func()) (written int64, err error, handled bool) {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return 0, nil, false
	}
	lr, limited := r.(*io.LimitedReader)
	if limited {
		r = lr.R
	}
	fr, ok := r.(*fileReader)
	if !ok {
		return 0, nil, false
	}
	src := fr.file.sendSource()
	if src == nil {
		return 0, nil, false
	}
	for fr.off < fr.end && (!limited || lr.N > 0) {
		n := min(fr.end-fr.off, sendFileChunk)
		if limited {
			n = min(n, lr.N)
		}
		touch()
		m, err := fr.file.sendChunk(tcp, src, fr.off, n)
		fr.advance(m)
		written += m
		if limited {
			lr.N -= m
		}
		if err != nil {
			return written, err, true
		}
		if m < n {
			// The file ended before its section did (it shrank): the request fails short
			// of its Content-Length.
			return written, io.ErrUnexpectedEOF, true
		}
	}
	return written, nil, true
}

// sendChunk sends n bytes of the file from off on conn.
func (f *File) sendChunk(conn *net.TCPConn, src *os.File, off, n int64) (int64, error) {
	f.zc.mu.Lock()
	defer f.zc.mu.Unlock()
	if f.zc.src == nil {
		return 0, os.ErrClosed
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	m, err := conn.ReadFrom(&io.LimitedReader{R: src, N: n})
	f.zeroCopied.Add(m)
	return m, err
}
