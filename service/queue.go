package service

import (
	"context"
	"sync"
)

// queue is a provider's FIFO of job ids waiting for a worker.
type queue struct {
	mu    sync.Mutex
	ids   []uint64
	ready chan struct{} // has a token while ids is not empty
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) push(id uint64) {
	q.mu.Lock()
	q.ids = append(q.ids, id)
	q.mu.Unlock()
	q.signal()
}

// pushFront puts id first: a job that was held back keeps its place.
func (q *queue) pushFront(id uint64) {
	q.mu.Lock()
	q.ids = append(q.ids, 0)
	copy(q.ids[1:], q.ids)
	q.ids[0] = id
	q.mu.Unlock()
	q.signal()
}

// pop waits for an id; false when ctx is done.
func (q *queue) pop(ctx context.Context) (uint64, bool) {
	for {
		if ctx.Err() != nil {
			return 0, false
		}
		q.mu.Lock()
		if len(q.ids) > 0 {
			id := q.ids[0]
			q.ids[0] = 0
			q.ids = q.ids[1:]
			more := len(q.ids) > 0
			q.mu.Unlock()
			if more {
				q.signal()
			}
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, false
		case <-q.ready:
		}
	}
}

// drain empties the queue and returns what it held.
func (q *queue) drain() []uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.ids
	q.ids = nil
	return ids
}
