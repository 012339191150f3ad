// Package garbagecollector deletes objects whose owners are gone and
// carries out the propagation policies: Background (owner goes first,
// dependents follow), Foreground (the owner waits, with the
// foregroundDeletion finalizer, until its blocking dependents are gone) and
// Orphan (dependents lose their owner reference, then the owner goes).
package garbagecollector

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Store is one kind's informer cache, seen untyped.
type Store struct {
	Kind *api.Kind
	Get  func(key string) (api.Object, bool)
	List func() []api.Object
}

// StoreFor adapts a typed informer and registers the collector's handlers.
func StoreFor[T api.Object](gc *Collector, inf *client.Informer[T]) {
	var zero T
	k := api.KindOf(zero)
	s := &Store{Kind: k,
		Get: func(key string) (api.Object, bool) { o, ok := inf.Get(key); return o, ok },
		List: func() []api.Object {
			var out []api.Object
			for _, o := range inf.List(nil) {
				out = append(out, o)
			}
			return out
		}}
	gc.stores[k.Kind] = s
	inf.AddHandler(client.Handler[T]{
		OnAdd:    func(o T) { gc.observe(k, nil, o) },
		OnUpdate: func(old, o T) { gc.observe(k, old, o) },
		OnDelete: func(o T) { gc.removed(k, o) },
	})
}

// Collector is the garbage collector.
type Collector struct {
	c      *client.Client
	stores map[string]*Store
	queue  client.Queue

	mu         sync.Mutex                 // guards dependents
	dependents map[string]map[string]bool // owner uid -> dependent keys "Kind/ns/name"
}

// New returns a collector; add stores with StoreFor before Run.
func New(c *client.Client) *Collector {
	return &Collector{c: c, stores: map[string]*Store{}, queue: client.NewQueue("garbagecollector"), dependents: map[string]map[string]bool{}}
}

func objKey(k *api.Kind, o api.Object) string { return k.Kind + "/" + api.NamespacedName(o) }

func (gc *Collector) observe(k *api.Kind, old, o api.Object) {
	key := objKey(k, o)
	gc.mu.Lock()
	if old != nil {
		for _, r := range old.GetMetadata().GetOwnerReferences() {
			delete(gc.dependents[r.Uid], key)
		}
	}
	for _, r := range o.GetMetadata().GetOwnerReferences() {
		if gc.dependents[r.Uid] == nil {
			gc.dependents[r.Uid] = map[string]bool{}
		}
		gc.dependents[r.Uid][key] = true
	}
	gc.mu.Unlock()
	m := o.GetMetadata()
	if len(m.OwnerReferences) > 0 || (m.DeletionTimestamp != nil && len(m.Finalizers) > 0) {
		gc.queue.Add(key)
	}
}

func (gc *Collector) removed(k *api.Kind, o api.Object) {
	key := objKey(k, o)
	gc.mu.Lock()
	for _, r := range o.GetMetadata().GetOwnerReferences() {
		delete(gc.dependents[r.Uid], key)
		// An owner waiting in the foreground may now be free.
		gc.queue.Add(r.Kind + "/" + api.NamespacedName(nsObj(o.GetMetadata().GetNamespace(), r.Name)))
	}
	deps := gc.dependents[o.GetMetadata().GetUid()]
	delete(gc.dependents, o.GetMetadata().GetUid())
	gc.mu.Unlock()
	for d := range deps {
		gc.queue.Add(d)
	}
}

// Run runs workers until ctx ends.
func (gc *Collector) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, "garbagecollector", gc.queue, workers, gc.sync)
}

func splitObjKey(key string) (kind, ns, name string) {
	kind, rest, _ := strings.Cut(key, "/")
	ns, name = controller.SplitKey(rest)
	return kind, ns, name
}

func hasFinalizer(m *v1.ObjectMeta, f string) bool {
	for _, x := range m.GetFinalizers() {
		if x == f {
			return true
		}
	}
	return false
}

func (gc *Collector) sync(ctx context.Context, key string) error {
	kind, ns, name := splitObjKey(key)
	s := gc.stores[kind]
	if s == nil {
		return nil
	}
	cached, ok := s.Get(api.NamespacedName(nsObj(ns, name)))
	if !ok {
		return nil
	}
	o := proto.Clone(cached).(api.Object)
	m := o.GetMetadata()
	res := client.Dynamic(gc.c, s.Kind)
	if m.DeletionTimestamp != nil {
		switch {
		case hasFinalizer(m, api.FinalizerOrphan):
			return gc.orphan(ctx, o)
		case hasFinalizer(m, api.FinalizerForeground):
			return gc.foreground(ctx, o)
		}
	}
	if len(m.OwnerReferences) == 0 || m.DeletionTimestamp != nil {
		return nil
	}
	anyAlive := false
	for _, r := range m.OwnerReferences {
		owner, alive, err := gc.owner(ctx, ns, r)
		if err != nil {
			return err
		}
		if !alive {
			continue
		}
		anyAlive = true
		// An owner deleted in the foreground takes its dependents first.
		om := owner.GetMetadata()
		if om.DeletionTimestamp != nil && hasFinalizer(om, api.FinalizerForeground) {
			_, err := res.Delete(ctx, ns, name, &v1.DeleteOptions{PropagationPolicy: "Foreground", Preconditions: &v1.Preconditions{Uid: &m.Uid}})
			if err != nil && !client.IsNotFound(err) && !client.IsConflict(err) {
				return err
			}
			return nil
		}
	}
	if anyAlive {
		return nil
	}
	// Every owner is gone: collect the dependent (in the background).
	_, err := res.Delete(ctx, ns, name, &v1.DeleteOptions{PropagationPolicy: "Background", Preconditions: &v1.Preconditions{Uid: &m.Uid}})
	if err != nil && !client.IsNotFound(err) && !client.IsConflict(err) {
		return err
	}
	return nil
}

func nsObj(ns, name string) api.Object {
	return &v1.Pod{Metadata: &v1.ObjectMeta{Namespace: ns, Name: name}}
}

// owner finds a referenced owner: the cache first, then the apiserver (the
// cache may not have seen a new owner yet). It is alive if its uid matches.
func (gc *Collector) owner(ctx context.Context, ns string, r *v1.OwnerReference) (api.Object, bool, error) {
	k, err := api.Lookup(r.Kind)
	if err != nil {
		return nil, false, nil // a kind we do not serve cannot exist
	}
	if !k.Namespaced {
		ns = ""
	}
	if s := gc.stores[k.Kind]; s != nil {
		if o, ok := s.Get(api.NamespacedName(nsObj(ns, r.Name))); ok && o.GetMetadata().GetUid() == r.Uid {
			return o, true, nil
		}
	}
	o, err := client.Dynamic(gc.c, k).Get(ctx, ns, r.Name)
	if client.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return o, o.GetMetadata().GetUid() == r.Uid, nil
}

func (gc *Collector) dependentsOf(uid string) []api.Object {
	gc.mu.Lock()
	keys := make([]string, 0, len(gc.dependents[uid]))
	for k := range gc.dependents[uid] {
		keys = append(keys, k)
	}
	gc.mu.Unlock()
	var out []api.Object
	for _, k := range keys {
		kind, ns, name := splitObjKey(k)
		if s := gc.stores[kind]; s != nil {
			if o, ok := s.Get(api.NamespacedName(nsObj(ns, name))); ok {
				out = append(out, o)
			}
		}
	}
	return out
}

// orphan strips the owner's reference from its dependents, then drops the
// orphan finalizer so the owner goes. The dependents are listed live, not
// from the caches: a dependent a cache has not seen yet would keep its
// reference and be collected once the owner is gone.
func (gc *Collector) orphan(ctx context.Context, owner api.Object) error {
	uid := owner.GetMetadata().GetUid()
	ns := owner.GetMetadata().GetNamespace()
	for _, s := range gc.stores {
		if ns != "" && !s.Kind.Namespaced {
			continue // a namespaced owner has no cluster-scoped dependents
		}
		res := client.Dynamic(gc.c, s.Kind)
		req := &v1.ListRequest{}
		if s.Kind.Namespaced {
			req.Namespace = ns
		}
		objs, _, err := res.List(ctx, req)
		if err != nil {
			return err
		}
		for _, d := range objs {
			m := d.GetMetadata()
			refs := controller.WithoutOwner(m.OwnerReferences, uid)
			if len(refs) == len(m.OwnerReferences) {
				continue
			}
			m.OwnerReferences = refs
			if _, err := res.Update(ctx, d); err != nil && !client.IsNotFound(err) {
				return err // a conflict retries with a fresh list
			}
		}
	}
	return gc.dropFinalizer(ctx, owner, api.FinalizerOrphan)
}

// foreground deletes the owner's dependents and drops the finalizer once
// no dependent that blocks owner deletion is left.
func (gc *Collector) foreground(ctx context.Context, owner api.Object) error {
	uid := owner.GetMetadata().GetUid()
	blocking := 0
	for _, d := range gc.dependentsOf(uid) {
		dm := d.GetMetadata()
		for _, r := range dm.OwnerReferences {
			if r.Uid == uid && r.GetBlockOwnerDeletion() {
				blocking++
			}
		}
		if dm.DeletionTimestamp == nil {
			dUID := dm.Uid
			_, err := client.Dynamic(gc.c, api.KindOf(d)).Delete(ctx, dm.Namespace, dm.Name,
				&v1.DeleteOptions{PropagationPolicy: "Foreground", Preconditions: &v1.Preconditions{Uid: &dUID}})
			if err != nil && !client.IsNotFound(err) && !client.IsConflict(err) {
				return err
			}
		}
	}
	if blocking > 0 {
		return nil // a dependent's removal will wake us
	}
	return gc.dropFinalizer(ctx, owner, api.FinalizerForeground)
}

func (gc *Collector) dropFinalizer(ctx context.Context, o api.Object, f string) error {
	upd := proto.Clone(o).(api.Object)
	m := upd.GetMetadata()
	m.Finalizers = api.WithoutFinalizer(m.Finalizers, f)
	_, err := client.Dynamic(gc.c, api.KindOf(o)).Update(ctx, upd)
	if client.IsNotFound(err) {
		return nil
	}
	return err
}
