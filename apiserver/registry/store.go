package registry

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Options configure every Store of a Registry.
type Options struct {
	// Prefix is the root of all keys, "/registry" by default.
	Prefix string
	// EventTTL is how long Events live (an etcd lease); Kubernetes' default is 1h.
	EventTTL time.Duration
	// WatchCacheSize is how many events per resource are kept for watchers
	// that start from an older resourceVersion; it also bounds how far one
	// watcher may fall behind.
	WatchCacheSize int
	// WatchCacheBytes bounds the same history in bytes (stored value sizes).
	WatchCacheBytes int64
	// MaxObjectBytes is the largest encoded object accepted (Kubernetes:
	// 1.5 MiB, what etcd accepts by default).
	MaxObjectBytes int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = "/registry"
	}
	if o.EventTTL == 0 {
		o.EventTTL = time.Hour
	}
	if o.WatchCacheSize == 0 {
		o.WatchCacheSize = 20000
	}
	if o.WatchCacheBytes == 0 {
		o.WatchCacheBytes = 32 << 20
	}
	if o.MaxObjectBytes == 0 {
		o.MaxObjectBytes = MaxObjectBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Registry holds one Store per kind.
type Registry struct {
	stores map[string]*Store
	client *clientv3.Client
}

// New builds the stores of every kind in api.Kinds over one etcd client.
func New(client *clientv3.Client, opts Options) *Registry {
	opts.setDefaults()
	r := &Registry{stores: map[string]*Store{}, client: client}
	leases := &leaseReuser{client: client, ttl: opts.EventTTL + time.Minute}
	for _, k := range api.Kinds {
		s := &Store{kind: k, client: client, opts: opts}
		s.cache = newWatchCache(s, opts.WatchCacheSize, opts.WatchCacheBytes)
		if k.Kind == "Event" {
			s.leases = leases
		}
		r.stores[k.Kind] = s
	}
	return r
}

// Start runs every store's etcd watch until ctx ends.
func (r *Registry) Start(ctx context.Context) {
	for _, s := range r.stores {
		go s.cache.run(ctx)
	}
}

// WaitReady blocks until every watch cache has started.
func (r *Registry) WaitReady(ctx context.Context) error {
	for _, s := range r.stores {
		select {
		case <-s.cache.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Store returns the store of a kind ("Pod").
func (r *Registry) Store(kind string) *Store { return r.stores[kind] }

// Store reads and writes one kind in etcd.
type Store struct {
	kind   *api.Kind
	client *clientv3.Client
	opts   Options
	cache  *watchCache
	leases *leaseReuser // Events only: their TTL
}

// Kind is the stored kind.
func (s *Store) Kind() *api.Kind { return s.kind }

func (s *Store) key(ns, name string) string { return s.kind.Key(s.opts.Prefix, ns, name) }

func (s *Store) ns(ns string) string {
	if !s.kind.Namespaced {
		return ""
	}
	if ns == "" {
		return api.DefaultNamespace
	}
	return ns
}

func (s *Store) decode(value []byte, modRev int64) (api.Object, error) {
	o, err := api.Decode(value)
	if err != nil {
		return nil, err
	}
	api.EnsureMeta(o).ResourceVersion = strconv.FormatInt(modRev, 10)
	return o, nil
}

// MaxObjectBytes is Kubernetes' limit on one stored object, 1.5 MiB.
const MaxObjectBytes = 3 << 19

// DecodeErrors counts stored values that could not be decoded and were
// skipped; the server registers it with its metrics.
var DecodeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "apiserver_storage_decode_errors_total",
	Help: "Values under the registry prefix that could not be decoded and were skipped, by resource.",
}, []string{"resource"})

// decodeFailed logs and counts an undecodable value: one bad key must not
// make a whole kind unreadable.
func (s *Store) decodeFailed(key string, err error) {
	slog.Warn("skipping undecodable stored object", "resource", s.kind.Resource, "key", key, "err", err)
	DecodeErrors.WithLabelValues(s.kind.Resource).Inc()
}

// checkSize refuses an encoded object over the limit before it reaches etcd.
func (s *Store) checkSize(name string, data []byte) error {
	if len(data) > s.opts.MaxObjectBytes {
		return newError(ErrInvalid, "%s %q is invalid: object is %d bytes, more than the limit of %d", s.kind.Kind, name, len(data), s.opts.MaxObjectBytes)
	}
	return nil
}

func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Create stores a new object: defaults, validates, sets uid,
// creationTimestamp and generation, and writes only if the key is absent.
func (s *Store) Create(ctx context.Context, in api.Object) (api.Object, error) {
	o := proto.Clone(in).(api.Object)
	if api.KindOf(o) != s.kind {
		return nil, newError(ErrBadRequest, "expected a %s", s.kind.Kind)
	}
	api.SetTypeMeta(o, s.kind)
	m := api.EnsureMeta(o)
	api.Default(o)
	if m.Name == "" && m.GenerateName != "" {
		m.Name = api.GenerateName(m.GenerateName, randomSuffix())
	}
	m.Uid = uuid.NewString()
	m.CreationTimestamp = timestamppb.New(s.opts.Now())
	m.ResourceVersion = ""
	m.Generation = 1
	m.DeletionTimestamp = nil
	m.DeletionGracePeriodSeconds = nil
	prepareForCreate(o)
	if errs := api.Validate(o); len(errs) > 0 {
		return nil, invalid(s.kind.Kind, m.Name, errs)
	}
	data, err := api.Encode(o)
	if err != nil {
		return nil, err
	}
	if err := s.checkSize(m.Name, data); err != nil {
		return nil, err
	}
	key := s.key(m.Namespace, m.Name)
	var putOpts []clientv3.OpOption
	if s.leases != nil {
		id, err := s.leases.get(ctx, s.opts.Now())
		if err != nil {
			return nil, fmt.Errorf("event lease: %w", err)
		}
		putOpts = append(putOpts, clientv3.WithLease(id))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data), putOpts...)).
		Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, newError(ErrAlreadyExists, "%s %q already exists", s.kind.Resource, m.Name)
	}
	m.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
	return o, nil
}

// prepareForCreate resets what users may not set on create.
func prepareForCreate(o api.Object) {
	switch x := o.(type) {
	case *v1.Pod:
		x.Status = &v1.PodStatus{Phase: "Pending", QosClass: QOSClass(x.GetSpec())}
	case *v1.ReplicaSet:
		x.Status = nil
	case *v1.Deployment:
		x.Status = nil
	case *v1.StatefulSet:
		x.Status = nil
	case *v1.PersistentVolumeClaim:
		// As Kubernetes' StorageObjectInUseProtection admission plugin: no
		// claim leaves etcd while a pod uses it.
		x.Status = &v1.PersistentVolumeClaimStatus{Phase: "Pending"}
		addFinalizer(api.EnsureMeta(x), api.FinalizerPVCProtection)
	}
}

// Get reads one object.
func (s *Store) Get(ctx context.Context, ns, name string) (api.Object, error) {
	o, _, err := s.get(ctx, s.ns(ns), name)
	return o, err
}

func (s *Store) get(ctx context.Context, ns, name string) (api.Object, int64, error) {
	resp, err := s.client.Get(ctx, s.key(ns, name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, notFound(s.kind.Resource, name)
	}
	kv := resp.Kvs[0]
	o, err := s.decode(kv.Value, kv.ModRevision)
	if err != nil {
		return nil, 0, newError(ErrCorrupt, "%s %q: the stored value at %s cannot be decoded: %v", s.kind.Resource, name, kv.Key, err)
	}
	return o, kv.ModRevision, nil
}

const listPageSize = 1000

// List reads the selected objects at one etcd revision, page by page, and
// returns them with that revision.
func (s *Store) List(ctx context.Context, sel *api.Selector) ([]api.Object, int64, error) {
	ns := ""
	if sel != nil {
		ns = sel.Namespace
	}
	prefix := s.kind.KeyPrefix(s.opts.Prefix, ns)
	var out []api.Object
	rev, err := s.eachObject(ctx, prefix, func(_ string, o api.Object) {
		if sel.Matches(o) {
			out = append(out, o)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// listAll reads every object under prefix at one revision, by key, for the
// watch cache; undecodable values are skipped as List skips them.
func (s *Store) listAll(ctx context.Context, prefix string) (map[string]api.Object, int64, error) {
	out := map[string]api.Object{}
	rev, err := s.eachObject(ctx, prefix, func(key string, o api.Object) { out[key] = o })
	if err != nil {
		return nil, 0, err
	}
	return out, rev, nil
}

// eachObject calls f with every object under prefix, read page by page at
// one etcd revision, which it returns. A value that cannot be decoded is
// skipped, logged and counted, so one bad key never fails a whole kind.
func (s *Store) eachObject(ctx context.Context, prefix string, f func(key string, o api.Object)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	key := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, key, opts...)
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			o, err := s.decode(kv.Value, kv.ModRevision)
			if err != nil {
				s.decodeFailed(string(kv.Key), err)
				continue
			}
			f(string(kv.Key), o)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Update replaces an object. With status false it changes metadata and spec
// and keeps the stored status; with status true it changes only status. A
// non-empty resourceVersion must match the stored one (else Conflict); an
// empty one retries against the latest.
func (s *Store) Update(ctx context.Context, in api.Object, status bool) (api.Object, error) {
	if api.KindOf(in) != s.kind {
		return nil, newError(ErrBadRequest, "expected a %s", s.kind.Kind)
	}
	inMeta := in.GetMetadata()
	if inMeta.GetName() == "" {
		return nil, newError(ErrInvalid, "%s is invalid: metadata.name: Required value", s.kind.Kind)
	}
	ns := s.ns(inMeta.GetNamespace())
	return s.guaranteedUpdate(ctx, ns, inMeta.GetName(), inMeta.GetResourceVersion(), func(cur api.Object) (api.Object, error) {
		// A uid in the request is a precondition: an update meant for an
		// object never lands on a newer one of the same name.
		if uid := inMeta.GetUid(); uid != "" && uid != cur.GetMetadata().GetUid() {
			return nil, newError(ErrConflict, "Precondition failed: UID in precondition: %s, UID in object meta: %s", uid, cur.GetMetadata().GetUid())
		}
		var next api.Object
		if status {
			next = proto.Clone(cur).(api.Object)
			api.SetField(next, "status", api.Field(in, "status"))
			if errs := api.ValidateUpdate(next, cur); len(errs) > 0 {
				return nil, invalid(s.kind.Kind, cur.GetMetadata().GetName(), errs)
			}
			return next, nil
		}
		next = proto.Clone(in).(api.Object)
		api.SetTypeMeta(next, s.kind)
		api.Default(next)
		nm, cm := api.EnsureMeta(next), cur.GetMetadata()
		nm.Namespace = cm.Namespace
		nm.Uid = cm.Uid
		nm.CreationTimestamp = cm.CreationTimestamp
		nm.DeletionTimestamp = cm.DeletionTimestamp
		nm.DeletionGracePeriodSeconds = cm.DeletionGracePeriodSeconds
		nm.GenerateName = cm.GenerateName
		nm.Generation = cm.Generation
		if s.kind.HasStatus {
			api.SetField(next, "status", api.Field(cur, "status"))
		}
		if !proto.Equal(api.Field(next, "spec"), api.Field(cur, "spec")) {
			nm.Generation++
		}
		if cm.DeletionTimestamp != nil {
			for _, f := range nm.Finalizers {
				if !containsString(cm.Finalizers, f) {
					return nil, newError(ErrInvalid, "%s %q is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers %q", s.kind.Kind, nm.Name, f)
				}
			}
		}
		if errs := api.ValidateUpdate(next, cur); len(errs) > 0 {
			return nil, invalid(s.kind.Kind, nm.Name, errs)
		}
		return next, nil
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// guaranteedUpdate reads the current object, applies tryUpdate and writes the
// result with a compare-and-swap on the mod revision. If wantRV is set it must
// match; otherwise a lost race retries with the new state. A write that
// changes nothing is skipped. An object being deleted with no finalizers left
// and no grace left is removed instead.
func (s *Store) guaranteedUpdate(ctx context.Context, ns, name, wantRV string, tryUpdate func(cur api.Object) (api.Object, error)) (api.Object, error) {
	for {
		cur, rev, err := s.get(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		if wantRV != "" && wantRV != cur.GetMetadata().GetResourceVersion() {
			return nil, conflict(s.kind.Resource, name)
		}
		next, err := tryUpdate(cur)
		if err != nil {
			return nil, err
		}
		nm := api.EnsureMeta(next)
		nm.ResourceVersion = ""
		curCopy := proto.Clone(cur).(api.Object)
		curCopy.GetMetadata().ResourceVersion = ""
		if proto.Equal(next, curCopy) {
			return cur, nil
		}
		key := s.key(ns, name)
		cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
		var op clientv3.Op
		removed := nm.DeletionTimestamp != nil && len(nm.Finalizers) == 0 && nm.GetDeletionGracePeriodSeconds() == 0
		if removed {
			op = clientv3.OpDelete(key)
		} else {
			if op, err = s.putOp(key, next); err != nil {
				return nil, err
			}
		}
		resp, err := s.client.Txn(ctx).If(cmp).Then(op).Commit()
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			if wantRV != "" {
				return nil, conflict(s.kind.Resource, name)
			}
			continue
		}
		nm.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
		return next, nil
	}
}

// Delete deletes an object as Kubernetes does (reference §3): preconditions
// on uid and resourceVersion; a bound, non-terminal pod gets deletionTimestamp
// and deletionGracePeriodSeconds and stays; later deletes may only shorten
// the grace; finalizers hold the object; otherwise the key goes at once.
// It returns the object's last state.
func (s *Store) Delete(ctx context.Context, ns, name string, opts *v1.DeleteOptions) (api.Object, error) {
	ns = s.ns(ns)
	switch p := opts.GetPropagationPolicy(); p {
	case "", "Background", "Foreground", "Orphan":
	default:
		return nil, newError(ErrBadRequest, "propagationPolicy: Unsupported value %q: supported values: \"Background\", \"Foreground\", \"Orphan\"", p)
	}
	if errs := api.ValidateDeleteOptions(opts); len(errs) > 0 {
		return nil, invalid("DeleteOptions", name, errs)
	}
	for {
		cur, rev, err := s.get(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		cm := cur.GetMetadata()
		if pre := opts.GetPreconditions(); pre != nil {
			if pre.Uid != nil && *pre.Uid != cm.Uid {
				return nil, newError(ErrConflict, "Precondition failed: UID in precondition: %s, UID in object meta: %s", *pre.Uid, cm.Uid)
			}
			if pre.ResourceVersion != nil && *pre.ResourceVersion != cm.ResourceVersion {
				return nil, newError(ErrConflict, "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s", *pre.ResourceVersion, cm.ResourceVersion)
			}
		}
		grace := s.gracePeriod(cur, opts)
		next := proto.Clone(cur).(api.Object)
		nm := next.GetMetadata()
		switch opts.GetPropagationPolicy() {
		case "Orphan":
			addFinalizer(nm, FinalizerOrphan)
		case "Foreground":
			addFinalizer(nm, FinalizerForeground)
		}
		now := s.opts.Now()
		if cm.DeletionTimestamp != nil {
			// Already being deleted: a later delete may only shorten the grace.
			if cm.DeletionGracePeriodSeconds != nil && grace < *cm.DeletionGracePeriodSeconds {
				nm.DeletionGracePeriodSeconds = &grace
				nm.DeletionTimestamp = timestamppb.New(now.Add(time.Duration(grace) * time.Second))
			}
		} else if grace > 0 || len(nm.Finalizers) > 0 {
			nm.DeletionGracePeriodSeconds = &grace
			nm.DeletionTimestamp = timestamppb.New(now.Add(time.Duration(grace) * time.Second))
			nm.Generation++
		}
		key := s.key(ns, name)
		cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
		var op clientv3.Op
		if len(nm.Finalizers) == 0 && nm.GetDeletionGracePeriodSeconds() == 0 {
			op = clientv3.OpDelete(key)
			if nm.DeletionTimestamp == nil {
				nm.DeletionTimestamp = timestamppb.New(now)
				nm.DeletionGracePeriodSeconds = &grace
			}
		} else {
			nm.ResourceVersion = ""
			curCopy := proto.Clone(cur).(api.Object)
			curCopy.GetMetadata().ResourceVersion = ""
			if proto.Equal(next, curCopy) {
				return cur, nil
			}
			if op, err = s.putOp(key, next); err != nil {
				return nil, err
			}
		}
		resp, err := s.client.Txn(ctx).If(cmp).Then(op).Commit()
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			continue
		}
		nm.ResourceVersion = strconv.FormatInt(resp.Header.Revision, 10)
		return next, nil
	}
}

// putOp rewrites an existing key; an Event keeps its lease (its TTL).
func (s *Store) putOp(key string, o api.Object) (clientv3.Op, error) {
	data, err := api.Encode(o)
	if err != nil {
		return clientv3.Op{}, err
	}
	if err := s.checkSize(o.GetMetadata().GetName(), data); err != nil {
		return clientv3.Op{}, err
	}
	var opts []clientv3.OpOption
	if s.leases != nil {
		opts = append(opts, clientv3.WithIgnoreLease())
	}
	return clientv3.OpPut(key, string(data), opts...), nil
}

// Finalizers the apiserver adds for propagationPolicy.
const (
	FinalizerOrphan     = api.FinalizerOrphan
	FinalizerForeground = api.FinalizerForeground
)

func addFinalizer(m *v1.ObjectMeta, f string) {
	if !containsString(m.Finalizers, f) {
		m.Finalizers = append(m.Finalizers, f)
	}
}

// gracePeriod is CheckGracefulDelete: only pods are deleted gracefully; an
// unbound or terminal pod goes at once; a negative request means 1.
func (s *Store) gracePeriod(cur api.Object, opts *v1.DeleteOptions) int64 {
	pod, ok := cur.(*v1.Pod)
	if !ok {
		return 0
	}
	grace := api.DefaultGracePeriodSecs
	if g := pod.GetSpec().TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if opts != nil && opts.GracePeriodSeconds != nil {
		grace = *opts.GracePeriodSeconds
	}
	if grace < 0 {
		grace = 1
	}
	// Validation bounds both; a pod stored before it did is capped here.
	grace = min(grace, api.MaxDurationSeconds)
	if pod.GetSpec().GetNodeName() == "" {
		grace = 0
	}
	if api.IsPodTerminal(pod) {
		grace = 0
	}
	return grace
}

// Bind sets spec.nodeName of an unbound pod and its PodScheduled condition.
// A pod is never bound twice and a bound pod never moves.
func (s *Store) Bind(ctx context.Context, b *v1.Binding) (api.Object, error) {
	name := b.GetMetadata().GetName()
	node := b.GetTarget().GetName()
	if name == "" || node == "" {
		return nil, newError(ErrInvalid, "Binding is invalid: metadata.name and target.name are required")
	}
	return s.guaranteedUpdate(ctx, s.ns(b.GetMetadata().GetNamespace()), name, "", func(cur api.Object) (api.Object, error) {
		pod := proto.Clone(cur).(*v1.Pod)
		if uid := b.GetMetadata().GetUid(); uid != "" && uid != pod.Metadata.Uid {
			return nil, newError(ErrConflict, "Precondition failed: UID in precondition: %s, UID in object meta: %s", uid, pod.Metadata.Uid)
		}
		if pod.Metadata.DeletionTimestamp != nil {
			return nil, newError(ErrConflict, "Operation cannot be fulfilled on pods/binding %q: pod %s is being deleted, cannot be assigned to a host", name, name)
		}
		if pod.Spec.NodeName != "" {
			return nil, newError(ErrConflict, "Operation cannot be fulfilled on pods/binding %q: pod %s is already assigned to node %q", name, name, pod.Spec.NodeName)
		}
		pod.Spec.NodeName = node
		if pod.Status == nil {
			pod.Status = &v1.PodStatus{Phase: "Pending"}
		}
		SetPodCondition(pod.Status, &v1.PodCondition{Type: "PodScheduled", Status: "True"}, s.opts.Now())
		return pod, nil
	})
}

// SetPodCondition sets or replaces a condition, keeping lastTransitionTime
// when the status did not change.
func SetPodCondition(st *v1.PodStatus, c *v1.PodCondition, now time.Time) {
	for i, old := range st.Conditions {
		if old.Type == c.Type {
			if old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			} else {
				c.LastTransitionTime = timestamppb.New(now)
			}
			st.Conditions[i] = c
			return
		}
	}
	c.LastTransitionTime = timestamppb.New(now)
	st.Conditions = append(st.Conditions, c)
}

// leaseReuser hands out etcd leases for Events, reusing one for a minute so
// that many events share a lease (as the Kubernetes apiserver does).
type leaseReuser struct {
	client *clientv3.Client
	ttl    time.Duration
	mu     sync.Mutex // guards id and granted
	id     clientv3.LeaseID
	grant  time.Time
}

func (l *leaseReuser) get(ctx context.Context, now time.Time) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.id != 0 && now.Sub(l.grant) < time.Minute {
		return l.id, nil
	}
	resp, err := l.client.Grant(ctx, int64(l.ttl.Seconds()))
	if err != nil {
		return 0, err
	}
	l.id, l.grant = resp.ID, now
	return l.id, nil
}

func cloneObject(o api.Object) api.Object { return proto.Clone(o).(api.Object) }
