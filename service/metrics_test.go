package service

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestInflightRate(t *testing.T) {
	sent := new(atomic.Int64)
	f := newInflight("p", sent)
	t0 := f.start
	if r, _ := f.rate(t0.Add(100 * time.Millisecond)); r != 0 {
		t.Errorf("rate after 100ms = %v, want 0 (too soon to say)", r)
	}
	// A burst at the start (socket buffers filling), then 1000 B/s.
	sent.Store(5000)
	if r, _ := f.rate(t0.Add(time.Second)); r != 5000 {
		t.Errorf("rate since the start = %v, want 5000", r)
	}
	for i := 2; i <= 30; i++ {
		sent.Store(5000 + int64(i-1)*1000)
		f.rate(t0.Add(time.Duration(i) * time.Second))
	}
	r, n := f.rate(t0.Add(30 * time.Second))
	if n != 34000 || r < 990 || r > 1010 {
		t.Errorf("rate over the window = %v (sent %d), want 1000", r, n)
	}
	if len(f.samples) > int(rateWindow/(250*time.Millisecond))+2 {
		t.Errorf("%d samples kept", len(f.samples))
	}
}
