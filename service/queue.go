package service

import (
	"context"
	"sync"
)

// queued is a job waiting for a worker, with its file's size: a worker takes a large file
// only when one of the provider's large-file slots is free.
type queued struct {
	id   uint64
	size int64
}

// queue is a provider's FIFO of jobs waiting for a worker.
type queue struct {
	mu    sync.Mutex
	ids   []queued
	ready chan struct{} // has a token while ids is not empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) push(id uint64, size int64) {
	q.mu.Lock()
	q.ids = append(q.ids, queued{id, size})
	q.mu.Unlock()
	q.signal()
}

// pushFront puts id first: a job that was held back keeps its place.
func (q *queue) pushFront(id uint64, size int64) {
	q.mu.Lock()
	q.ids = append(q.ids, queued{})
	copy(q.ids[1:], q.ids)
	q.ids[0] = queued{id, size}
	q.mu.Unlock()
	q.signal()
}

// pop waits for a job; false when ctx is done.
func (q *queue) pop(ctx context.Context) (queued, bool) {
	for {
		if ctx.Err() != nil {
			return queued{}, false
		}
		q.mu.Lock()
		if len(q.ids) > 0 {
			j := q.ids[0]
			q.ids[0] = queued{}
			q.ids = q.ids[1:]
			more := len(q.ids) > 0
			q.mu.Unlock()
			if more {
				q.signal()
			}
			return j, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return queued{}, false
		case <-q.ready:
		}
	}
}

// drain empties the queue and returns the ids it held.
func (q *queue) drain() []uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := make([]uint64, len(q.ids))
	for i, j := range q.ids {
		ids[i] = j.id
	}
	q.ids = nil
	return ids
}
