package core

import (
	"testing"
	"time"
)

func TestQueueBackoffAndMoves(t *testing.T) {
	now := time.Unix(1000, 0)
	q := newQueue(time.Second, 10*time.Second, 5*time.Minute)
	q.now = func() time.Time { return now }
	q.Add("a")
	q.Add("a") // duplicates coalesce
	key, _, ok := q.Pop()
	if !ok || key != "a" {
		t.Fatalf("Pop = %q %v", key, ok)
	}
	if a, b, u := q.Len(); a != 0 || b != 0 || u != 0 {
		t.Fatalf("lens %d %d %d", a, b, u)
	}
	q.Unschedulable("a")
	if _, _, u := q.Len(); u != 1 {
		t.Fatal("not parked")
	}
	// A cluster change during the back-off sends it to back-off, not active.
	q.MoveAllToActive()
	if a, b, _ := q.Len(); a != 0 || b != 1 {
		t.Fatalf("after a change within the back-off: active %d backoff %d", a, b)
	}
	now = now.Add(999 * time.Millisecond)
	q.flush()
	if a, _, _ := q.Len(); a != 0 {
		t.Fatal("back-off ended early")
	}
	now = now.Add(2 * time.Millisecond)
	q.flush()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("back-off did not end after 1s")
	}
	// Back-offs double up to 10 s.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := q.backoffFor(i + 1); got != w {
			t.Errorf("attempt %d: back-off %v, want %v", i+1, got, w)
		}
	}
	// Parked pods are retried after at most 5 minutes without any change.
	q.Pop()
	q.Unschedulable("a")
	now = now.Add(5 * time.Minute)
	q.flush()
	if a, _, u := q.Len(); a != 1 || u != 0 {
		t.Errorf("after 5 minutes: active %d unschedulable %d", a, u)
	}
	q.Delete("a")
	q.Add("b")
	if key, _, _ := q.Pop(); key != "b" {
		t.Errorf("a deleted pod was popped: %q", key)
	}
}
