package registry

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubelite/kubelite/internal/api"
)

// Event types of a watch, as Kubernetes names them.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
)

// Event is one change as a watcher sees it.
type Event struct {
	Type   string
	Object api.Object
	Rev    int64
}

// change is one etcd event, decoded once and shared (read-only) by watchers.
type change struct {
	rev  int64
	obj  api.Object // nil on delete
	prev api.Object // nil on create
}

// watchCache keeps one etcd watch per resource and fans its events out to
// every gRPC watcher, with a ring of recent changes so a watcher can start
// from a recent resourceVersion without its own etcd watch.
type watchCache struct {
	store *Store
	size  int
	ready chan struct{}

	mu       sync.Mutex // guards the fields below
	ring     []change   // circular: the last n changes, oldest at ring[head]
	head, n  int
	fromRev  int64 // every change after fromRev is in the ring
	watchers map[*Watcher]struct{}
}

func newWatchCache(s *Store, size int) *watchCache {
	return &watchCache{store: s, size: size, ring: make([]change, size), ready: make(chan struct{}), watchers: map[*Watcher]struct{}{}}
}

// run follows the resource's key prefix in etcd until ctx ends. If etcd's
// watch fails (e.g. compacted under it), every watcher ends with ErrTooOld
// and the cache restarts from the current revision.
func (c *watchCache) run(ctx context.Context) {
	prefix := c.store.kind.KeyPrefix(c.store.opts.Prefix, "")
	first := true
	for ctx.Err() == nil {
		resp, err := c.store.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			slog.Warn("watch cache: cannot read revision", "resource", c.store.kind.Resource, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		c.reset(resp.Header.Revision)
		if first {
			close(c.ready)
			first = false
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.store.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1), clientv3.WithPrevKV())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				slog.Warn("watch cache: etcd watch ended", "resource", c.store.kind.Resource, "err", err)
				break
			}
			for _, ev := range wr.Events {
				c.apply(ev)
			}
		}
		cancel()
	}
	c.mu.Lock()
	for w := range c.watchers {
		w.stop(ErrGone)
	}
	c.mu.Unlock()
}

func (c *watchCache) reset(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.ring)
	c.head, c.n = 0, 0
	c.fromRev = rev
	for w := range c.watchers {
		w.stop(newError(ErrTooOld, "too old resource version: the watch cache of %s restarted; relist", c.store.kind.Resource))
		delete(c.watchers, w)
	}
}

func (c *watchCache) apply(ev *clientv3.Event) {
	ch := change{rev: ev.Kv.ModRevision}
	if ev.Type == mvccpb.DELETE {
		ch.rev = ev.Kv.ModRevision
	}
	if ev.Type == mvccpb.PUT {
		o, err := c.store.decode(ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			slog.Error("watch cache: undecodable value", "key", string(ev.Kv.Key), "err", err)
			return
		}
		ch.obj = o
	}
	if ev.PrevKv != nil {
		p, err := c.store.decode(ev.PrevKv.Value, ev.PrevKv.ModRevision)
		if err == nil {
			ch.prev = p
		}
	}
	if ev.Type == mvccpb.DELETE && ch.prev != nil {
		// A deleted object is reported with the deletion's revision.
		p := cloneObject(ch.prev)
		p.GetMetadata().ResourceVersion = strconv.FormatInt(ch.rev, 10)
		ch.prev = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == c.size {
		c.fromRev = c.ring[c.head].rev
		c.ring[c.head] = ch
		c.head = (c.head + 1) % c.size
	} else {
		c.ring[(c.head+c.n)%c.size] = ch
		c.n++
	}
	for w := range c.watchers {
		if !w.send(ch) {
			delete(c.watchers, w)
		}
	}
}

// Watcher receives the changes one client asked for.
type Watcher struct {
	sel     *api.Selector
	after   int64
	ch      chan Event
	done    chan struct{}
	once    sync.Once
	err     error
	cache   *watchCache
	initial []Event
}

// Events delivers the watcher's events, in revision order.
func (w *Watcher) Events() <-chan Event { return w.ch }

// Done is closed when the watcher ends; Err then says why.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err is why the watcher ended (nil while it runs).
func (w *Watcher) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// Initial are the events to send before those of Events (the synthetic
// ADDED events of a watch without a resourceVersion).
func (w *Watcher) Initial() []Event { return w.initial }

// Stop ends the watcher.
func (w *Watcher) Stop() {
	w.cache.mu.Lock()
	delete(w.cache.watchers, w)
	w.cache.mu.Unlock()
	w.stop(nil)
}

func (w *Watcher) stop(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
	})
}

// send filters one change through the watcher's selector; it returns false
// when the watcher is too slow and was stopped.
func (w *Watcher) send(ch change) bool {
	if ch.rev <= w.after {
		return true
	}
	ev, ok := w.translate(ch)
	if !ok {
		return true
	}
	select {
	case w.ch <- ev:
		return true
	default:
		w.stop(newError(ErrGone, "watch of %s closed: the client did not keep up; rewatch from the last resourceVersion", w.cache.store.kind.Resource))
		return false
	}
}

// translate turns a change into what this watcher sees: an object that
// starts matching is ADDED, one that stops matching is DELETED.
func (w *Watcher) translate(ch change) (Event, bool) {
	cur := ch.obj != nil && w.sel.Matches(ch.obj)
	prev := ch.prev != nil && w.sel.Matches(ch.prev)
	switch {
	case cur && prev:
		return Event{Type: Modified, Object: ch.obj, Rev: ch.rev}, true
	case cur:
		return Event{Type: Added, Object: ch.obj, Rev: ch.rev}, true
	case prev && ch.obj != nil:
		return Event{Type: Deleted, Object: ch.obj, Rev: ch.rev}, true
	case prev:
		return Event{Type: Deleted, Object: ch.prev, Rev: ch.rev}, true
	}
	return Event{}, false
}

const watcherBuffer = 10000

// Watch starts a watcher. An empty or "0" resourceVersion first lists the
// current state as ADDED events; otherwise changes after rv are sent, or
// ErrTooOld if that revision is compacted or no longer cached.
func (s *Store) Watch(ctx context.Context, sel *api.Selector, resourceVersion string) (*Watcher, error) {
	c := s.cache
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := &Watcher{sel: sel, ch: make(chan Event, watcherBuffer), done: make(chan struct{}), cache: c}
	if resourceVersion == "" || resourceVersion == "0" {
		objs, rev, err := s.List(ctx, sel)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			w.initial = append(w.initial, Event{Type: Added, Object: o, Rev: rev})
		}
		w.after = rev
	} else {
		rv, err := strconv.ParseInt(resourceVersion, 10, 64)
		if err != nil || rv < 0 {
			return nil, newError(ErrBadRequest, "resourceVersion: Invalid value %q: must be a revision number", resourceVersion)
		}
		w.after = rv
		// etcd answers ErrCompacted for a read at a compacted revision.
		prefix := s.kind.KeyPrefix(s.opts.Prefix, "")
		if _, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rv), clientv3.WithCountOnly()); err != nil {
			if errors.Is(err, rpctypes.ErrCompacted) {
				return nil, newError(ErrTooOld, "too old resource version: %d (compacted)", rv)
			}
			if !errors.Is(err, rpctypes.ErrFutureRev) {
				return nil, err
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.after < c.fromRev {
		return nil, newError(ErrTooOld, "too old resource version: %d (%d)", w.after, c.fromRev+1)
	}
	for i := 0; i < c.n; i++ {
		ch := c.ring[(c.head+i)%c.size]
		if ch.rev > w.after {
			if ev, ok := w.translate(ch); ok {
				w.initial = append(w.initial, ev)
			}
		}
	}
	if c.n > 0 {
		if last := c.ring[(c.head+c.n-1)%c.size].rev; last > w.after {
			w.after = last
		}
	}
	c.watchers[w] = struct{}{}
	return w, nil
}
