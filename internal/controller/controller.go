// Package controller holds what Kubernetes' pkg/controller shares between
// controllers: expectations, owner references and adoption, pod state
// helpers, template hashing and the controller run loop.
package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// ExpectationsTimeout is how long unmet expectations hold a controller back.
const ExpectationsTimeout = 5 * time.Minute

// Expectations count the creations and deletions a controller made but has
// not yet seen in its informer, so it does not act twice on a stale cache.
type Expectations struct {
	mu sync.Mutex // guards m
	m  map[string]*expectation
}

type expectation struct {
	add, del int64
	at       time.Time
}

// NewExpectations returns empty expectations.
func NewExpectations() *Expectations { return &Expectations{m: map[string]*expectation{}} }

// Expect records that adds creations and dels deletions are on their way.
func (e *Expectations) Expect(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{add: int64(adds), del: int64(dels), at: time.Now()}
}

// Observed lowers the expectation by one creation (or deletion).
func (e *Expectations) Observed(key string, creation bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return
	}
	if creation {
		x.add--
	} else {
		x.del--
	}
}

// Satisfied reports whether the controller may sync key: all it expected
// was seen, or the expectation expired.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	if (x.add <= 0 && x.del <= 0) || time.Since(x.at) > ExpectationsTimeout {
		return true
	}
	return false
}

// Delete forgets key.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

// ControllerRef returns the owner reference with controller=true.
func ControllerRef(m *v1.ObjectMeta) *v1.OwnerReference {
	for _, r := range m.GetOwnerReferences() {
		if r.GetController() {
			return r
		}
	}
	return nil
}

// NewControllerRef builds the reference a controller puts on what it owns.
func NewControllerRef(owner api.Object) *v1.OwnerReference {
	k := api.KindOf(owner)
	t := true
	return &v1.OwnerReference{ApiVersion: k.APIVersion, Kind: k.Kind, Name: owner.GetMetadata().GetName(),
		Uid: owner.GetMetadata().GetUid(), Controller: &t, BlockOwnerDeletion: &t}
}

// WithoutOwner returns refs minus those to the owner with uid.
func WithoutOwner(refs []*v1.OwnerReference, uid string) []*v1.OwnerReference {
	var out []*v1.OwnerReference
	for _, r := range refs {
		if r.Uid != uid {
			out = append(out, r)
		}
	}
	return out
}

// Claim returns the candidates owner controls whose labels match sel. It
// adopts matching orphans (unless either side is being deleted) and
// releases owned objects whose labels stopped matching; with
// holdWhileDeleting an owner being deleted keeps them instead. update
// writes a changed candidate; a candidate gone or changed meanwhile is
// skipped.
func Claim[T api.Object](ctx context.Context, owner api.Object, sel labels.Selector, candidates []T, holdWhileDeleting bool,
	update func(context.Context, T) (T, error)) ([]T, error) {
	om := owner.GetMetadata()
	deleting := om.DeletionTimestamp != nil
	var owned []T
	for _, o := range candidates {
		m := o.GetMetadata()
		ref := ControllerRef(m)
		matches := sel.Matches(labels.Set(m.Labels))
		switch {
		case ref != nil && ref.Uid == om.Uid:
			if matches || (deleting && holdWhileDeleting) {
				owned = append(owned, o)
				continue
			}
			upd := proto.Clone(o).(T)
			upd.GetMetadata().OwnerReferences = WithoutOwner(m.OwnerReferences, om.Uid)
			if _, err := update(ctx, upd); err != nil && !client.IsNotFound(err) {
				return nil, err
			}
		case ref == nil && matches && !deleting && m.DeletionTimestamp == nil:
			upd := proto.Clone(o).(T)
			upd.GetMetadata().OwnerReferences = append(upd.GetMetadata().OwnerReferences, NewControllerRef(owner))
			adopted, err := update(ctx, upd)
			if err != nil {
				if client.IsNotFound(err) || client.IsConflict(err) {
					continue
				}
				return nil, err
			}
			owned = append(owned, adopted)
		}
	}
	return owned, nil
}

// IsPodActive: not terminal and not being deleted.
func IsPodActive(p *v1.Pod) bool {
	return !api.IsPodTerminal(p) && p.GetMetadata().GetDeletionTimestamp() == nil
}

// PodReadyCondition returns the pod's Ready condition, if any.
func PodReadyCondition(p *v1.Pod) *v1.PodCondition {
	for _, c := range p.GetStatus().GetConditions() {
		if c.Type == "Ready" {
			return c
		}
	}
	return nil
}

// IsPodReady reports Ready=True.
func IsPodReady(p *v1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == "True"
}

// IsPodAvailable reports a pod Ready for at least minReadySeconds.
func IsPodAvailable(p *v1.Pod, minReadySeconds int32, now time.Time) bool {
	c := PodReadyCondition(p)
	if c == nil || c.Status != "True" {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	return c.LastTransitionTime != nil && !c.LastTransitionTime.AsTime().Add(time.Duration(minReadySeconds)*time.Second).After(now)
}

// TemplateHash is the pod-template-hash of a template: FNV-32a of its
// canonical JSON (and the collision count), as a short safe string.
func TemplateHash(t *v1.PodTemplateSpec, collisionCount int32) string {
	h := fnv.New32a()
	b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(t)
	// protojson output is not canonical; normalise through encoding/json.
	var m any
	if json.Unmarshal(b, &m) == nil {
		b, _ = json.Marshal(m)
	}
	h.Write(b)
	if collisionCount > 0 {
		fmt.Fprintf(h, "%d", collisionCount)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// PodsPrefix is the generateName of the pods a controller named name
// creates, as Kubernetes' getPodsPrefix: "<name>-", or the bare name when
// "<name>-" is no valid prefix (the prefix check masks the trailing '-', so
// this holds for every valid name up to 253 characters). The apiserver keeps
// the first 58 characters of it when it generates the name.
func PodsPrefix(name string) string {
	prefix := name + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return name
	}
	return prefix
}

// PodFromTemplate builds a pod for owner from its template.
func PodFromTemplate(t *v1.PodTemplateSpec, owner api.Object, generateName string) *v1.Pod {
	spec := proto.Clone(t.GetSpec()).(*v1.PodSpec)
	m := t.GetMetadata()
	labels := map[string]string{}
	for k, v := range m.GetLabels() {
		labels[k] = v
	}
	ann := map[string]string{}
	for k, v := range m.GetAnnotations() {
		ann[k] = v
	}
	return &v1.Pod{
		Metadata: &v1.ObjectMeta{GenerateName: generateName, Namespace: owner.GetMetadata().GetNamespace(), Labels: labels, Annotations: ann,
			OwnerReferences: []*v1.OwnerReference{NewControllerRef(owner)}},
		Spec: spec,
	}
}

// Worker runs sync for queue keys until ctx ends: errors retry with the
// queue's back-off, success forgets the key.
func Worker(ctx context.Context, name string, q client.Queue, sync func(ctx context.Context, key string) error) {
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		err := sync(ctx, key)
		if err == nil {
			q.Forget(key)
		} else if ctx.Err() == nil {
			slog.Warn("sync failed; retrying", "controller", name, "key", key, "err", client.Message(err))
			q.AddRateLimited(key)
		}
		q.Done(key)
	}
}

// RunWorkers runs n workers on q until ctx ends, then shuts q down and
// waits for them.
func RunWorkers(ctx context.Context, name string, q client.Queue, n int, syncFn func(ctx context.Context, key string) error) {
	go func() { <-ctx.Done(); q.ShutDown() }()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); Worker(ctx, name, q, syncFn) }()
	}
	wg.Wait()
}

// KeyOf is a queue key: "namespace/name".
func KeyOf(o api.Object) string { return api.NamespacedName(o) }

// SplitKey splits "namespace/name".
func SplitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}
