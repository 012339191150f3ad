package core

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// queue is the scheduling queue, as Kubernetes' PriorityQueue without
// priorities: an active FIFO, a back-off heap, and the unschedulable pods
// that wait for a cluster change (or for the periodic flush).
type queue struct {
	backoffInitial, backoffMax, maxUnschedulable time.Duration
	now                                          func() time.Time

	mu            sync.Mutex // guards everything below
	cond          *sync.Cond
	active        []string
	inActive      map[string]bool
	backoff       backoffHeap
	unschedulable map[string]*entry
	entries       map[string]*entry // every pod the queue knows, wherever it is
	closed        bool
}

type entry struct {
	key          string
	attempts     int
	firstQueued  time.Time
	backoffUntil time.Time
	parkedAt     time.Time
	inFlight     bool
	heapIndex    int
}

func newQueue(initial, max, maxUnschedulable time.Duration) *queue {
	q := &queue{backoffInitial: initial, backoffMax: max, maxUnschedulable: maxUnschedulable, now: time.Now,
		inActive: map[string]bool{}, unschedulable: map[string]*entry{}, entries: map[string]*entry{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues a pod that needs scheduling (no-op if already queued).
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.entries[key]; ok {
		return
	}
	e := &entry{key: key, firstQueued: q.now(), heapIndex: -1}
	q.entries[key] = e
	q.pushActive(e)
}

func (q *queue) pushActive(e *entry) {
	if q.inActive[e.key] {
		return
	}
	q.inActive[e.key] = true
	q.active = append(q.active, e.key)
	q.cond.Signal()
}

// Delete forgets a pod (deleted, bound elsewhere).
func (q *queue) Delete(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[key]
	if !ok {
		return
	}
	delete(q.entries, key)
	delete(q.unschedulable, key)
	if e.heapIndex >= 0 {
		heap.Remove(&q.backoff, e.heapIndex)
	}
	// An active key is skipped when popped (no entry).
}

// Pop blocks for the next pod to schedule; it returns false when closed.
func (q *queue) Pop() (string, time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.active) > 0 {
			key := q.active[0]
			q.active = q.active[1:]
			delete(q.inActive, key)
			if e, ok := q.entries[key]; ok {
				e.inFlight = true
				return key, e.firstQueued, true
			}
		}
		if q.closed {
			return "", time.Time{}, false
		}
		q.cond.Wait()
	}
}

// Done ends a successful attempt: the pod leaves the queue.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.entries, key)
}

func (q *queue) backoffFor(attempts int) time.Duration {
	d := q.backoffInitial
	for i := 1; i < attempts && d < q.backoffMax; i++ {
		d *= 2
	}
	return min(d, q.backoffMax)
}

// Unschedulable parks a pod that fits nowhere until something changes.
func (q *queue) Unschedulable(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[key]
	if !ok {
		return
	}
	e.inFlight = false
	e.attempts++
	now := q.now()
	e.backoffUntil = now.Add(q.backoffFor(e.attempts))
	e.parkedAt = now
	q.unschedulable[key] = e
}

// Retry backs a pod off after an error (e.g. a failed bind).
func (q *queue) Retry(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[key]
	if !ok {
		return
	}
	e.inFlight = false
	e.attempts++
	e.backoffUntil = q.now().Add(q.backoffFor(e.attempts))
	heap.Push(&q.backoff, e)
}

// MoveAllToActive is called on a cluster change that may help parked pods:
// they go to active, or to back-off if theirs has not ended.
func (q *queue) MoveAllToActive() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for key, e := range q.unschedulable {
		delete(q.unschedulable, key)
		if e.backoffUntil.After(now) {
			heap.Push(&q.backoff, e)
		} else {
			q.pushActive(e)
		}
	}
}

// flush moves ended back-offs to active and pods parked too long (the
// periodic retry, at least every maxUnschedulable).
func (q *queue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for q.backoff.Len() > 0 && !q.backoff[0].backoffUntil.After(now) {
		e := heap.Pop(&q.backoff).(*entry)
		q.pushActive(e)
	}
	for key, e := range q.unschedulable {
		if now.Sub(e.parkedAt) >= q.maxUnschedulable {
			delete(q.unschedulable, key)
			q.pushActive(e)
		}
	}
}

// run flushes every interval until ctx ends, then closes the queue.
func (q *queue) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			q.mu.Lock()
			q.closed = true
			q.cond.Broadcast()
			q.mu.Unlock()
			return
		case <-t.C:
			q.flush()
		}
	}
}

// Len reports the pods in each part: active, back-off, unschedulable.
func (q *queue) Len() (int, int, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active), q.backoff.Len(), len(q.unschedulable)
}

type backoffHeap []*entry

func (h backoffHeap) Len() int           { return len(h) }
func (h backoffHeap) Less(i, j int) bool { return h[i].backoffUntil.Before(h[j].backoffUntil) }
func (h backoffHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *backoffHeap) Push(x any) {
	e := x.(*entry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}
func (h *backoffHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	e.heapIndex = -1
	return e
}
