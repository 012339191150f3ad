package client

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Handler receives an informer's changes. Handlers run on the informer's
// goroutine and should only enqueue work. Objects are shared with the cache:
// never mutate them; proto.Clone first.
type Handler[T api.Object] struct {
	OnAdd    func(obj T)
	OnUpdate func(oldObj, newObj T)
	OnDelete func(obj T)
}

// Informer lists and watches one kind, keeps a local cache, and calls its
// handlers on every change. A watch that ends is reopened from the last
// resourceVersion; a "too old resource version" relists (the client-go
// Reflector's rules).
type Informer[T api.Object] struct {
	res *Resource[T]
	req *v1.ListRequest

	mu       sync.RWMutex // guards items, rv, synced and handlers
	items    map[string]T
	rv       string
	synced   bool
	handlers []Handler[T]
	syncCh   chan struct{}

	onSleep func(time.Duration) // tests: sees every back-off delay
}

// NewInformer watches the objects res serves that req selects (namespace,
// labelSelector, fieldSelector); req may be nil for all.
func NewInformer[T api.Object](res *Resource[T], req *v1.ListRequest) *Informer[T] {
	if req == nil {
		req = &v1.ListRequest{}
	}
	return &Informer[T]{res: res, req: req, items: map[string]T{}, syncCh: make(chan struct{})}
}

// AddHandler registers a handler; it first sees ADDs for the cached objects.
func (i *Informer[T]) AddHandler(h Handler[T]) {
	i.mu.Lock()
	i.handlers = append(i.handlers, h)
	existing := make([]T, 0, len(i.items))
	for _, o := range i.items {
		existing = append(existing, o)
	}
	i.mu.Unlock()
	if h.OnAdd != nil {
		for _, o := range existing {
			h.OnAdd(o)
		}
	}
}

// watchBackoff is the delay before a failed list or a broken watch is
// retried: 100ms doubling to 5s, with jitter so that many informers
// reconnecting to a restarted apiserver do not arrive together.
var watchBackoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: math.MaxInt32, Cap: 5 * time.Second}

// minHealthyWatch is how long a watch must last, if it delivered nothing,
// to count as healthy and reset the back-off (client-go's reflector calls a
// shorter one a "very short watch"). The apiserver ends every watch after
// a few minutes on purpose; that must not push re-watches towards the cap.
const minHealthyWatch = time.Second

// Run lists and watches until ctx ends.
func (i *Informer[T]) Run(ctx context.Context) {
	backoff := watchBackoff
	needList := true
	for ctx.Err() == nil {
		cycle := time.Now() // a list-then-watch cycle starts
		if needList {
			if err := i.relist(ctx); err != nil {
				d := backoff.Step()
				if ctx.Err() == nil {
					slog.Warn("informer: list failed", "resource", i.res.kind.Resource, "err", Message(err), "retry_in", d)
				}
				i.sleep(ctx, d)
				continue
			}
			needList = false
		}
		start := time.Now()
		events, err := i.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		healthy := events > 0 || time.Since(start) >= minHealthyWatch
		if healthy {
			backoff = watchBackoff
		}
		if IsTooOld(err) {
			// Too old or too new a resourceVersion: relist. At once after a
			// healthy cycle; after one that was short and delivered nothing
			// (e.g. a write burst outruns the watch cache as fast as the
			// informer relists) only after the back-off, as client-go's
			// reflector waits on its backoff manager before each relist.
			needList = true
			if !healthy && time.Since(cycle) < minHealthyWatch {
				d := backoff.Step()
				slog.Info("informer: relisting after a back-off", "resource", i.res.kind.Resource, "reason", Message(err), "retry_in", d)
				i.sleep(ctx, d)
				continue
			}
			slog.Info("informer: relisting", "resource", i.res.kind.Resource, "reason", Message(err))
			continue
		}
		d := backoff.Step()
		slog.Debug("informer: watch ended", "resource", i.res.kind.Resource, "err", Message(err), "retry_in", d)
		i.sleep(ctx, d)
	}
}

// sleep waits d or until ctx ends; tests observe the delays through onSleep.
func (i *Informer[T]) sleep(ctx context.Context, d time.Duration) {
	if i.onSleep != nil {
		i.onSleep(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// relist replaces the cache with a fresh list, telling handlers the difference.
func (i *Informer[T]) relist(ctx context.Context) error {
	items, rv, err := i.res.List(ctx, i.req)
	if err != nil {
		return err
	}
	fresh := make(map[string]T, len(items))
	for _, o := range items {
		fresh[api.NamespacedName(o)] = o
	}
	i.mu.Lock()
	old := i.items
	i.items = fresh
	i.rv = rv
	handlers := i.handlers
	first := !i.synced
	i.synced = true
	i.mu.Unlock()
	// Handlers run outside the lock (they may read other caches).
	for key, o := range fresh {
		if prev, ok := old[key]; ok {
			if prev.GetMetadata().GetResourceVersion() != o.GetMetadata().GetResourceVersion() {
				notify(handlers, func(h Handler[T]) {
					if h.OnUpdate != nil {
						h.OnUpdate(prev, o)
					}
				})
			}
			continue
		}
		notify(handlers, func(h Handler[T]) {
			if h.OnAdd != nil {
				h.OnAdd(o)
			}
		})
	}
	for key, o := range old {
		if _, ok := fresh[key]; !ok {
			notify(handlers, func(h Handler[T]) {
				if h.OnDelete != nil {
					h.OnDelete(o)
				}
			})
		}
	}
	if first {
		close(i.syncCh)
	}
	return nil
}

func notify[T api.Object](handlers []Handler[T], f func(Handler[T])) {
	for _, h := range handlers {
		f(h)
	}
}

// watch follows changes from the cached resourceVersion until the stream
// ends, and says how many events it delivered.
func (i *Informer[T]) watch(ctx context.Context) (int, error) {
	i.mu.RLock()
	rv := i.rv
	i.mu.RUnlock()
	w, err := i.res.Watch(ctx, &v1.WatchRequest{
		Namespace: i.req.Namespace, LabelSelector: i.req.LabelSelector, FieldSelector: i.req.FieldSelector, ResourceVersion: rv,
	})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	for n := 0; ; n++ {
		typ, o, err := w.Recv()
		if err != nil {
			return n, err
		}
		i.apply(typ, o)
	}
}

// apply updates the cache under the lock, then tells the handlers outside
// it, in event order (one goroutine delivers everything).
func (i *Informer[T]) apply(typ string, o T) {
	key := api.NamespacedName(o)
	i.mu.Lock()
	i.rv = o.GetMetadata().GetResourceVersion()
	prev, had := i.items[key]
	switch typ {
	case "ADDED", "MODIFIED":
		i.items[key] = o
	case "DELETED":
		delete(i.items, key)
	}
	handlers := i.handlers
	i.mu.Unlock()
	switch {
	case typ == "DELETED":
		notify(handlers, func(h Handler[T]) {
			if h.OnDelete != nil {
				h.OnDelete(o)
			}
		})
	case had:
		notify(handlers, func(h Handler[T]) {
			if h.OnUpdate != nil {
				h.OnUpdate(prev, o)
			}
		})
	default:
		notify(handlers, func(h Handler[T]) {
			if h.OnAdd != nil {
				h.OnAdd(o)
			}
		})
	}
}

// HasSynced reports whether the first list has completed.
func (i *Informer[T]) HasSynced() bool {
	select {
	case <-i.syncCh:
		return true
	default:
		return false
	}
}

// WaitForSync blocks until the first list completes or ctx ends.
func (i *Informer[T]) WaitForSync(ctx context.Context) bool {
	select {
	case <-i.syncCh:
		return true
	case <-ctx.Done():
		return false
	}
}

// Get returns the cached object "ns/name" (or "name" if cluster-scoped).
func (i *Informer[T]) Get(key string) (T, bool) {
	i.mu.RLock()
	defer i.mu.RUnlock()
	o, ok := i.items[key]
	return o, ok
}

// List returns the cached objects for which keep returns true (all if nil).
func (i *Informer[T]) List(keep func(T) bool) []T {
	i.mu.RLock()
	defer i.mu.RUnlock()
	out := make([]T, 0, len(i.items))
	for _, o := range i.items {
		if keep == nil || keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// ResourceVersion is the revision the cache reflects.
func (i *Informer[T]) ResourceVersion() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.rv
}
