package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func putEvent(t *testing.T, name string, rev int64, padding int) *clientv3.Event {
	t.Helper()
	p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{"pad": strings.Repeat("x", padding)}}}
	api.SetTypeMeta(p, api.KindOf(p))
	data, err := api.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("/registry/pods/default/" + name), Value: data, ModRevision: rev}}
}

func testCache(entries int, bytes int64) *watchCache {
	s := &Store{kind: api.KindOf(&v1.Pod{}), opts: Options{Prefix: "/registry"}}
	c := newWatchCache(s, entries, bytes)
	s.cache = c
	return c
}

func TestWatchCacheHistoryIsBoundedInBytesAndEntries(t *testing.T) {
	tests := []struct {
		name         string
		entries      int
		bytes        int64
		wantMaxInBuf int
	}{
		{"bytes bind first", 1000, 10_000, 10}, // ~1 KiB per change
		{"entries bind first", 5, 1 << 30, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testCache(tt.entries, tt.bytes)
			for i := 1; i <= 100; i++ {
				c.apply(putEvent(t, fmt.Sprintf("p%d", i), int64(i), 1000))
			}
			n := len(c.history) - c.head
			if n == 0 || n > tt.wantMaxInBuf {
				t.Errorf("history holds %d changes, want 1..%d", n, tt.wantMaxInBuf)
			}
			if c.histBytes > tt.bytes {
				t.Errorf("history holds %d bytes, over the %d-byte budget", c.histBytes, tt.bytes)
			}
			if want := int64(100 - n); c.fromRev != want {
				t.Errorf("fromRev = %d, want %d (the last evicted change)", c.fromRev, want)
			}
			if len(c.objects) != 100 {
				t.Errorf("current objects = %d, want all 100 (only history is bounded)", len(c.objects))
			}
		})
	}
}

func TestWatcherQueueGrowsAndStopsASlowWatcher(t *testing.T) {
	c := testCache(50, 1<<30)
	w := &Watcher{sel: nil, cache: c, notify: make(chan struct{}, 1), done: make(chan struct{})}
	c.watchers[w] = struct{}{}
	if cap(w.queue) != 0 {
		t.Fatalf("a new watcher's queue has capacity %d, want 0 (it grows on demand)", cap(w.queue))
	}
	for i := 1; i <= 10; i++ {
		c.apply(putEvent(t, fmt.Sprintf("p%d", i), int64(i), 10))
	}
	if evs := w.Take(); len(evs) != 10 || evs[0].Type != Added || evs[9].Rev != 10 {
		t.Fatalf("took %d events, want the 10 ADDED in order", len(evs))
	}
	for i := 11; i <= 70; i++ {
		c.apply(putEvent(t, fmt.Sprintf("p%d", i), int64(i), 10))
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("a watcher 60 events behind a 50-event cache was not stopped")
	}
	if _, ok := c.watchers[w]; ok {
		t.Error("the stopped watcher is still registered")
	}
}

func TestUndecodablePutLooksDeletedToWatchers(t *testing.T) {
	c := testCache(50, 1<<30)
	c.apply(putEvent(t, "a", 1, 10))
	w := &Watcher{cache: c, after: 1, notify: make(chan struct{}, 1), done: make(chan struct{})}
	c.watchers[w] = struct{}{}
	c.apply(&clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("/registry/pods/default/a"), Value: []byte("garbage"), ModRevision: 2}})
	evs := w.Take()
	if len(evs) != 1 || evs[0].Type != Deleted || evs[0].Object.GetMetadata().GetName() != "a" {
		t.Fatalf("events = %v, want DELETED a", evs)
	}
	if len(c.objects) != 0 {
		t.Errorf("the cache still holds %d objects", len(c.objects))
	}
}

func TestWorthDefrag(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name               string
		size, inUse, minFr int64
		want               bool
	}{
		{"nothing free", 100 * mib, 100 * mib, 32 * mib, false},
		{"little free in bytes", 40 * mib, 20 * mib, 32 * mib, false},
		{"much free", 200 * mib, 100 * mib, 32 * mib, true},
		{"free but a small share of a big db", 2000 * mib, 1900 * mib, 32 * mib, false},
		{"a quarter free", 400 * mib, 300 * mib, 32 * mib, true},
		{"zero threshold, some free", 4 * mib, 1 * mib, 0, true},
		{"in use above size (racy status)", 10 * mib, 11 * mib, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WorthDefrag(tt.size, tt.inUse, tt.minFr); got != tt.want {
				t.Errorf("WorthDefrag(%d, %d, %d) = %v, want %v", tt.size, tt.inUse, tt.minFr, got, tt.want)
			}
		})
	}
}

// TestWatchInitialListComesFromTheCache starts watches from resourceVersion
// "0" on a store without an etcd client: the initial objects come from the
// watch cache, with no etcd read and no decode per watcher.
func TestWatchInitialListComesFromTheCache(t *testing.T) {
	c := testCache(50, 1<<30)
	close(c.ready)
	for i := 1; i <= 3; i++ {
		c.apply(putEvent(t, fmt.Sprintf("p%d", i), int64(i), 10))
	}
	sel, err := api.NewSelector(c.store.kind, "default", "", "metadata.name!=p2")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		w, err := c.store.Watch(t.Context(), sel, "0")
		if err != nil {
			t.Fatal(err)
		}
		init := w.Initial()
		if len(init) != 2 || init[0].Object != c.objects["/registry/pods/default/p1"] || init[1].Object.GetMetadata().GetName() != "p3" {
			t.Fatalf("initial events = %v, want the cached p1 and p3 (shared, not decoded again)", init)
		}
		w.Stop()
	}
	if len(c.watchers) != 0 {
		t.Errorf("%d watchers left registered after Stop", len(c.watchers))
	}
}

// TestStalledWatcherOfBigObjectsIsStoppedWhenHistoryDropsItsChanges: a
// watcher that takes nothing while big objects stream by must not keep them
// alive beyond the history's byte budget. It is stopped as too old (its
// resume would be too old anyway) as soon as its oldest queued change leaves
// the history, and its queue is released.
func TestStalledWatcherOfBigObjectsIsStoppedWhenHistoryDropsItsChanges(t *testing.T) {
	const budget = 100 << 10 // 100 KiB of history, ~10 changes of 10 KiB
	c := testCache(20_000, budget)
	w := &Watcher{cache: c, notify: make(chan struct{}, 1), done: make(chan struct{})}
	c.watchers[w] = struct{}{}
	for i := 1; i <= 200; i++ {
		c.apply(putEvent(t, fmt.Sprintf("p%d", i), int64(i), 10<<10))
		w.mu.Lock()
		var queued int64
		for _, ev := range w.queue {
			queued += int64(len(ev.Object.GetMetadata().GetAnnotations()["pad"]))
		}
		w.mu.Unlock()
		if queued > budget {
			t.Fatalf("after %d changes the stalled watcher holds %d bytes of objects, over the history's %d", i, queued, budget)
		}
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("the stalled watcher was not stopped")
	}
	if !errors.Is(w.Err(), ErrTooOld) {
		t.Errorf("Err = %v, want ErrTooOld (the client relists)", w.Err())
	}
	if evs := w.Take(); len(evs) != 0 {
		t.Errorf("the stopped watcher still holds %d events", len(evs))
	}
	if _, ok := c.watchers[w]; ok {
		t.Error("the stopped watcher is still registered")
	}
}
