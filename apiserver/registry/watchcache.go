package registry

import (
	"context"
	"errors"
	"log/slog"
	"sort"
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
	size int64      // bytes of the stored value, for the cache's byte budget
}

// watchCache keeps one etcd watch per resource and fans its events out to
// every gRPC watcher. Like the Kubernetes apiserver's cacher it holds the
// resource's current objects (so a watch's initial list costs no etcd read
// and no decode) and a history of recent changes, bounded in entries and in
// bytes, so a watcher can start from a recent resourceVersion.
type watchCache struct {
	store      *Store
	maxEntries int
	maxBytes   int64
	ready      chan struct{}

	mu        sync.Mutex            // guards the fields below
	objects   map[string]api.Object // key → current object, as of rev
	history   []change              // oldest first, from history[head]
	head      int
	histBytes int64
	fromRev   int64         // every change after fromRev is in history
	rev       int64         // the revision the cache reflects
	advanced  chan struct{} // closed (and replaced) whenever rev grows
	watchCtx  context.Context
	watchers  map[*Watcher]struct{}
}

func newWatchCache(s *Store, maxEntries int, maxBytes int64) *watchCache {
	return &watchCache{store: s, maxEntries: maxEntries, maxBytes: maxBytes, ready: make(chan struct{}),
		objects: map[string]api.Object{}, advanced: make(chan struct{}), watchers: map[*Watcher]struct{}{}}
}

// run follows the resource's key prefix in etcd until ctx ends. If etcd's
// watch is compacted under it, the cache relists, every watcher ends with
// ErrTooOld and the cache restarts from the list's revision. Any other end
// of etcd's watch (no leader during an election, a broken connection) only
// restarts etcd's watch from the revision after the cache's: watchers carry
// on and miss nothing.
func (c *watchCache) run(ctx context.Context) {
	prefix := c.store.kind.KeyPrefix(c.store.opts.Prefix, "")
	first := true
	needList := true
	retry := time.Duration(0)
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		if needList {
			objs, rev, err := c.store.listAll(ctx, prefix)
			if err != nil {
				cancel()
				if ctx.Err() == nil {
					slog.Warn("watch cache: cannot list", "resource", c.store.kind.Resource, "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			c.reset(objs, rev, wctx)
			needList = false
			if first {
				close(c.ready)
				first = false
			}
		}
		c.mu.Lock()
		from := c.rev + 1
		c.watchCtx = wctx
		c.mu.Unlock()
		wch := c.store.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
		var werr error
		delivered := false
		for wr := range wch {
			if err := wr.Err(); err != nil {
				werr = err
				break
			}
			if wr.IsProgressNotify() {
				c.progress(wr.Header.Revision)
				continue
			}
			for _, ev := range wr.Events {
				c.apply(ev)
			}
			delivered = true
		}
		cancel()
		if ctx.Err() != nil {
			break
		}
		if errors.Is(werr, rpctypes.ErrCompacted) {
			slog.Warn("watch cache: etcd watch compacted; relisting", "resource", c.store.kind.Resource, "from", from)
			needList = true
			continue
		}
		// Resume from the cache's revision, after a pause that grows while
		// etcd's watch keeps failing at once.
		if delivered {
			retry = 0
		}
		retry = min(max(2*retry, 100*time.Millisecond), 5*time.Second)
		slog.Warn("watch cache: etcd watch ended; resuming it", "resource", c.store.kind.Resource, "err", werr, "retry_in", retry)
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
	c.mu.Lock()
	for w := range c.watchers {
		w.stop(ErrGone)
	}
	c.mu.Unlock()
}

// reset replaces the cache's state with a fresh list at rev.
func (c *watchCache) reset(objs map[string]api.Object, rev int64, wctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects = objs
	clear(c.history)
	c.history, c.head, c.histBytes = nil, 0, 0
	c.fromRev = rev
	c.watchCtx = wctx
	c.setRev(rev)
	for w := range c.watchers {
		w.stop(newError(ErrTooOld, "too old resource version: the watch cache of %s restarted; relist", c.store.kind.Resource))
		delete(c.watchers, w)
	}
}

// setRev moves the cache's revision forward and wakes those waiting for it.
// c.mu is held.
func (c *watchCache) setRev(rev int64) {
	c.rev = rev
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// progress records an etcd progress notification: every change up to rev
// has been delivered.
func (c *watchCache) progress(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev > c.rev {
		c.setRev(rev)
	}
}

func (c *watchCache) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	ch := change{rev: ev.Kv.ModRevision, size: int64(len(ev.Kv.Key) + len(ev.Kv.Value))}
	if ev.Type == mvccpb.PUT {
		o, err := c.store.decode(ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			// As List does: the key is skipped, so to watchers it is gone.
			c.store.decodeFailed(key, err)
		} else {
			ch.obj = o
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.objects[key]; ok {
		ch.prev = prev
	}
	if ch.obj != nil {
		c.objects[key] = ch.obj
	} else {
		delete(c.objects, key)
	}
	if ch.obj == nil && ch.prev != nil {
		// A deleted object is reported with the deletion's revision.
		p := cloneObject(ch.prev)
		p.GetMetadata().ResourceVersion = strconv.FormatInt(ch.rev, 10)
		ch.prev = p
	}
	c.history = append(c.history, ch)
	c.histBytes += ch.size
	for n := len(c.history) - c.head; n > 0 && (n > c.maxEntries || c.histBytes > c.maxBytes); n-- {
		old := c.history[c.head]
		c.history[c.head] = change{}
		c.head++
		c.histBytes -= old.size
		c.fromRev = old.rev
	}
	if c.head > 1024 && c.head > len(c.history)/2 {
		// Reuse the front of the slice instead of growing for ever.
		c.history = append(c.history[:0:0], c.history[c.head:]...)
		c.head = 0
	}
	c.setRev(ch.rev)
	for w := range c.watchers {
		if !w.send(ch, c.fromRev) {
			delete(c.watchers, w)
		}
	}
}

// waitFresh waits until the cache reflects etcd's revision rev, asking etcd
// for a progress notification; false when that takes longer than timeout.
func (c *watchCache) waitFresh(ctx context.Context, rev int64, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	asked := false
	for {
		c.mu.Lock()
		cur, advanced, wctx := c.rev, c.advanced, c.watchCtx
		c.mu.Unlock()
		if cur >= rev {
			return true
		}
		if !asked && wctx != nil {
			// Answered by a progress notification once etcd's watch is synced.
			_ = c.store.client.RequestProgress(wctx)
			asked = true
		}
		select {
		case <-advanced:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Watcher receives the changes one client asked for. Its queue starts empty
// and grows with what the client has not yet taken. A watcher whose oldest
// undelivered change has left the watch cache's history is stopped at once
// with ErrTooOld (its client could not resume from before that change
// anyway, so nothing is lost) and its queue is dropped: a stalled client
// never holds more than the history does (bounded in entries and bytes),
// nor keeps alive objects the history has let go. The history's entry
// bound (cache.maxEntries) also caps the queue's length.
type Watcher struct {
	sel     *api.Selector
	after   int64
	cache   *watchCache
	initial []Event

	mu     sync.Mutex // guards queue
	queue  []Event
	notify chan struct{} // holds a token while queue is non-empty
	done   chan struct{}
	once   sync.Once
	err    error
}

// Ready is signalled when events are waiting; take them with Take.
func (w *Watcher) Ready() <-chan struct{} { return w.notify }

// Take returns the waiting events, in revision order, and empties the queue.
func (w *Watcher) Take() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = nil
	return q
}

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

// Initial are the events to send before the queued ones (the synthetic
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

// drop stops the watcher with err and releases its queued events (and so
// the objects they hold). w.mu is held.
func (w *Watcher) drop(err error) {
	clear(w.queue)
	w.queue = nil
	w.stop(err)
}

// send filters one change through the watcher's selector and queues it; it
// returns false when the watcher is too far behind and was stopped. fromRev
// is the watch cache's: every change after it is still in its history.
func (w *Watcher) send(ch change, fromRev int64) bool {
	if ch.rev <= w.after {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 && w.queue[0].Rev <= fromRev {
		// The client has not taken a change the history no longer holds: a
		// resume from its last resourceVersion would be too old.
		w.drop(newError(ErrTooOld, "too old resource version: the watch of %s fell behind the watch cache's history (%d); relist", w.cache.store.kind.Resource, fromRev+1))
		return false
	}
	ev, ok := w.translate(ch)
	if !ok {
		return true
	}
	if len(w.queue) >= w.cache.maxEntries {
		w.drop(newError(ErrGone, "watch of %s closed: the client is more than %d events behind; rewatch from the last resourceVersion", w.cache.store.kind.Resource, w.cache.maxEntries))
		return false
	}
	w.queue = append(w.queue, ev)
	select {
	case w.notify <- struct{}{}:
	default:
	}
	return true
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

// freshTimeout bounds how long a watch without a resourceVersion waits for
// the cache to catch up with etcd before it lists from etcd instead (the
// Kubernetes apiserver waits 3s for a consistent read from its cache).
const freshTimeout = 3 * time.Second

// Watch starts a watcher. Without a resourceVersion it first sends the
// current state as ADDED events ("" the latest, "0" whatever the cache
// holds), served from the watch cache; otherwise the changes after rv, or
// ErrTooOld if the cache no longer holds them, or ErrTooLarge if rv is newer
// than etcd's revision.
func (s *Store) Watch(ctx context.Context, sel *api.Selector, resourceVersion string) (*Watcher, error) {
	c := s.cache
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := &Watcher{sel: sel, cache: c, notify: make(chan struct{}, 1), done: make(chan struct{})}
	var rv int64
	switch resourceVersion {
	case "":
		etcdRev, err := s.currentRevision(ctx)
		if err != nil {
			return nil, err
		}
		if !c.waitFresh(ctx, etcdRev, freshTimeout) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return s.watchFromList(ctx, w)
		}
		rv = -1
	case "0":
		rv = -1
	default:
		var err error
		rv, err = strconv.ParseInt(resourceVersion, 10, 64)
		if err != nil || rv < 0 {
			return nil, newError(ErrBadRequest, "resourceVersion: Invalid value %q: must be a revision number", resourceVersion)
		}
		// One read of a single key at rv: etcd answers ErrCompacted for a
		// compacted revision and ErrFutureRev for one it has not reached.
		_, err = s.client.Get(ctx, s.kind.KeyPrefix(s.opts.Prefix, ""), clientv3.WithRev(rv), clientv3.WithCountOnly())
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			return nil, newError(ErrTooOld, "too old resource version: %d (compacted)", rv)
		case errors.Is(err, rpctypes.ErrFutureRev):
			cur, _ := s.currentRevision(ctx)
			return nil, newError(ErrTooLarge, "too large resource version: %d, current: %d; relist", rv, cur)
		case err != nil:
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rv < 0 {
		w.initial = c.snapshot(sel)
		w.after = c.rev
		c.watchers[w] = struct{}{}
		return w, nil
	}
	return w, c.resumeLocked(w, rv)
}

// resumeLocked starts w after revision rv: the history after rv becomes
// part of its initial events, and it is registered for what follows. A
// revision older than the history is too old. c.mu is held.
func (c *watchCache) resumeLocked(w *Watcher, rv int64) error {
	if rv < c.fromRev {
		return newError(ErrTooOld, "too old resource version: %d (%d)", rv, c.fromRev+1)
	}
	w.after = rv
	for _, ch := range c.history[c.head:] {
		if ch.rev > rv {
			if ev, ok := w.translate(ch); ok {
				w.initial = append(w.initial, ev)
			}
		}
	}
	if c.rev > w.after {
		w.after = c.rev
	}
	c.watchers[w] = struct{}{}
	return nil
}

// snapshot is the cache's current state as ADDED events, in key order.
// c.mu is held.
func (c *watchCache) snapshot(sel *api.Selector) []Event {
	keys := make([]string, 0, len(c.objects))
	for k, o := range c.objects {
		if sel.Matches(o) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	evs := make([]Event, len(keys))
	for i, k := range keys {
		evs[i] = Event{Type: Added, Object: c.objects[k], Rev: c.rev}
	}
	return evs
}

// watchFromList starts w with a list from etcd: the fallback when the cache
// does not catch up in time.
func (s *Store) watchFromList(ctx context.Context, w *Watcher) (*Watcher, error) {
	objs, rev, err := s.List(ctx, w.sel)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		w.initial = append(w.initial, Event{Type: Added, Object: o, Rev: rev})
	}
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.resumeLocked(w, rev); err != nil {
		return nil, err
	}
	return w, nil
}

// currentRevision is etcd's current revision (a linearizable read of one
// key, no values).
func (s *Store) currentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, s.kind.KeyPrefix(s.opts.Prefix, ""), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}
