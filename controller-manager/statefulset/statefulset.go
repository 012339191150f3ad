// Package statefulset is the StatefulSet controller (reference §7): pods
// <name>-<ordinal> with stable names and a PersistentVolumeClaim per claim
// template and ordinal (claims.go), ordered (OrderedReady) or parallel
// scaling, rolling updates from the highest ordinal down with partition
// and maxUnavailable, OnDelete, and ControllerRevisions for history and
// rollback.
package statefulset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Labels Kubernetes puts on StatefulSet pods.
const (
	RevisionLabel = "controller-revision-hash"
	PodNameLabel  = "statefulset.kubernetes.io/pod-name"
)

// Controller is the StatefulSet controller.
type Controller struct {
	c      *client.Client
	rec    *record.Recorder
	sets   *client.Informer[*v1.StatefulSet]
	pods   *client.Informer[*v1.Pod]
	revs   *client.Informer[*v1.ControllerRevision]
	claims *client.Informer[*v1.PersistentVolumeClaim]
	queue  client.Queue
}

// New wires the controller to shared informers.
func New(c *client.Client, rec *record.Recorder, sets *client.Informer[*v1.StatefulSet], pods *client.Informer[*v1.Pod], revs *client.Informer[*v1.ControllerRevision], claims *client.Informer[*v1.PersistentVolumeClaim]) *Controller {
	sc := &Controller{c: c, rec: rec, sets: sets, pods: pods, revs: revs, claims: claims, queue: client.NewQueue("statefulset")}
	enqueue := func(s *v1.StatefulSet) { sc.queue.Add(controller.KeyOf(s)) }
	sets.AddHandler(client.Handler[*v1.StatefulSet]{OnAdd: enqueue, OnUpdate: func(_, s *v1.StatefulSet) { enqueue(s) }})
	claims.AddHandler(client.Handler[*v1.PersistentVolumeClaim]{OnAdd: sc.claimChanged, OnUpdate: func(_, c *v1.PersistentVolumeClaim) { sc.claimChanged(c) }, OnDelete: sc.claimChanged})
	podChanged := func(p *v1.Pod) {
		if ref := controller.ControllerRef(p.Metadata); ref != nil && ref.Kind == "StatefulSet" {
			sc.queue.Add(p.Metadata.Namespace + "/" + ref.Name)
		}
	}
	pods.AddHandler(client.Handler[*v1.Pod]{OnAdd: podChanged, OnUpdate: func(_, p *v1.Pod) { podChanged(p) }, OnDelete: podChanged})
	return sc
}

// Run runs workers until ctx ends.
func (sc *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, "statefulset", sc.queue, workers, sc.sync)
}

// ClaimName is the claim of ordinal i: <claim>-<set>-<i>.
func ClaimName(claim, set string, ordinal int) string { return api.ClaimName(claim, set, ordinal) }

// PodName is <set>-<ordinal>.
func PodName(set string, ordinal int) string { return fmt.Sprintf("%s-%d", set, ordinal) }

// ordinalOf reads the ordinal from a pod name, -1 if it is not one of set's.
func ordinalOf(set, pod string) int {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// revisionData is a template's snapshot in a ControllerRevision.
func revisionData(t *v1.PodTemplateSpec) []byte {
	b, _ := protojson.Marshal(t)
	return b
}

// TemplateOf reads a ControllerRevision's template.
func TemplateOf(r *v1.ControllerRevision) (*v1.PodTemplateSpec, error) {
	t := &v1.PodTemplateSpec{}
	return t, protojson.Unmarshal(r.Data, t)
}

func (sc *Controller) revisionsOf(s *v1.StatefulSet) []*v1.ControllerRevision {
	var out []*v1.ControllerRevision
	for _, r := range sc.revs.List(func(r *v1.ControllerRevision) bool { return r.Metadata.Namespace == s.Metadata.Namespace }) {
		if ref := controller.ControllerRef(r.Metadata); ref != nil && ref.Uid == s.Metadata.Uid {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out
}

// updateRevision finds (or creates) the revision of the current template;
// an older revision that matches becomes the newest (a rollback).
func (sc *Controller) updateRevision(ctx context.Context, s *v1.StatefulSet, revs []*v1.ControllerRevision) (*v1.ControllerRevision, error) {
	var max int64
	for _, r := range revs {
		max = maxI(max, r.Revision)
	}
	for _, r := range revs {
		t, err := TemplateOf(r)
		if err == nil && proto.Equal(t, s.Spec.Template) {
			if r.Revision == max {
				return r, nil
			}
			upd := proto.Clone(r).(*v1.ControllerRevision)
			upd.Revision = max + 1
			return sc.c.ControllerRevisions().Update(ctx, upd)
		}
	}
	hash := controller.TemplateHash(s.Spec.Template, s.GetStatus().GetCollisionCount())
	lbls := map[string]string{}
	for k, v := range s.Spec.GetSelector().GetMatchLabels() {
		lbls[k] = v
	}
	lbls[RevisionLabel] = s.Metadata.Name + "-" + hash
	r := &v1.ControllerRevision{
		Metadata: &v1.ObjectMeta{Name: s.Metadata.Name + "-" + hash, Namespace: s.Metadata.Namespace, Labels: lbls,
			OwnerReferences: []*v1.OwnerReference{controller.NewControllerRef(s)}},
		Data: revisionData(s.Spec.Template), Revision: max + 1,
	}
	out, err := sc.c.ControllerRevisions().Create(ctx, r)
	if client.IsAlreadyExists(err) {
		// Created by a previous sync whose cache we have not seen yet.
		return sc.c.ControllerRevisions().Get(ctx, s.Metadata.Namespace, r.Metadata.Name)
	}
	return out, err
}

func maxI(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func isHealthy(p *v1.Pod, minReady int32, now time.Time) bool {
	return p.Metadata.DeletionTimestamp == nil && p.GetStatus().GetPhase() == "Running" && controller.IsPodAvailable(p, minReady, now)
}

// newPod builds ordinal i's pod from a revision's template.
func newPod(s *v1.StatefulSet, i int, rev *v1.ControllerRevision) (*v1.Pod, error) {
	t, err := TemplateOf(rev)
	if err != nil {
		return nil, err
	}
	name := PodName(s.Metadata.Name, i)
	p := controller.PodFromTemplate(t, s, "")
	p.Metadata.Name = name
	p.Metadata.Labels[RevisionLabel] = rev.Metadata.Name
	p.Metadata.Labels[PodNameLabel] = name
	p.Spec.Hostname = name
	p.Spec.Subdomain = s.Spec.GetServiceName()
	for _, c := range s.Spec.GetVolumeClaimTemplates() {
		cn := c.GetMetadata().GetName()
		p.Spec.Volumes = append(p.Spec.Volumes, &v1.Volume{Name: cn,
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: ClaimName(cn, s.Metadata.Name, i)}})
	}
	return p, nil
}

func (sc *Controller) sync(ctx context.Context, key string) error {
	cached, ok := sc.sets.Get(key)
	if !ok {
		return nil
	}
	s := proto.Clone(cached).(*v1.StatefulSet)
	if s.Metadata.DeletionTimestamp != nil {
		return nil
	}
	sel, err := api.LabelSelectorAsSelector(s.Spec.GetSelector())
	if err != nil {
		return nil
	}
	revs := sc.revisionsOf(s)
	update, err := sc.updateRevision(ctx, s, revs)
	if err != nil {
		return err
	}
	current := update
	for _, r := range revs {
		if r.Metadata.Name == s.GetStatus().GetCurrentRevision() {
			current = r
		}
	}
	// The pods, by ordinal.
	replicas := int(s.Spec.GetReplicas())
	byOrdinal := map[int]*v1.Pod{}
	var condemned []int
	for _, p := range sc.pods.List(func(p *v1.Pod) bool { return p.Metadata.Namespace == s.Metadata.Namespace }) {
		ref := controller.ControllerRef(p.Metadata)
		if ref == nil || ref.Uid != s.Metadata.Uid || !sel.Matches(labels.Set(p.Metadata.Labels)) {
			continue
		}
		i := ordinalOf(s.Metadata.Name, p.Metadata.Name)
		if i < 0 {
			continue
		}
		byOrdinal[i] = p
		if i >= replicas {
			condemned = append(condemned, i)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(condemned)))
	if err := sc.createMissingClaims(ctx, s, byOrdinal, replicas); err != nil {
		return err
	}
	if err := sc.syncClaimOwners(ctx, s, byOrdinal, replicas); err != nil {
		return err
	}
	ordered := s.Spec.GetPodManagementPolicy() != "Parallel"
	minReady := s.Spec.GetMinReadySeconds()
	now := time.Now()
	ru := s.Spec.GetUpdateStrategy().GetRollingUpdate()
	partition := int(ru.GetPartition())
	onDelete := s.Spec.GetUpdateStrategy().GetType() == "OnDelete"

	err = sc.scale(ctx, s, byOrdinal, condemned, replicas, ordered, minReady, now, current, update, partition, onDelete)
	if err == nil && !onDelete {
		err = sc.rollingUpdate(ctx, s, byOrdinal, replicas, minReady, now, update, partition)
	}
	if serr := sc.syncStatus(ctx, s, byOrdinal, replicas, minReady, now, current, update); serr != nil && err == nil {
		err = serr
	}
	if err == nil {
		err = sc.truncateHistory(ctx, s, revs, current, update)
	}
	return err
}

// scale creates missing ordinals and removes condemned ones, in order under
// OrderedReady (each predecessor Running and Ready first; scale down from
// the highest, each successor gone first).
//
// Under Parallel an ordinal that cannot be created (its claim is being
// deleted, say) does not stop the others: errors are collected and
// returned together, as Kubernetes' runForAll does.
func (sc *Controller) scale(ctx context.Context, s *v1.StatefulSet, byOrdinal map[int]*v1.Pod, condemned []int, replicas int, ordered bool, minReady int32, now time.Time, current, update *v1.ControllerRevision, partition int, onDelete bool) error {
	var errs []error
	for i := 0; i < replicas; i++ {
		p := byOrdinal[i]
		if p != nil && api.IsPodTerminal(p) && p.Metadata.DeletionTimestamp == nil {
			// A failed or finished pod is replaced with a new one, same name.
			uid := p.Metadata.Uid
			if _, err := sc.c.Pods().Delete(ctx, p.Metadata.Namespace, p.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil && !client.IsNotFound(err) {
				return err
			}
			sc.rec.Eventf(s, record.Normal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Metadata.Name, s.Metadata.Name)
			if ordered {
				return nil
			}
			continue
		}
		if p == nil {
			rev := update
			if !onDelete && i < partition {
				rev = current
			}
			pod, err := newPod(s, i, rev)
			if err != nil {
				return err
			}
			if err := sc.createClaims(ctx, s, i); err != nil {
				if ordered {
					return err
				}
				errs = append(errs, err)
				continue
			}
			if _, err := sc.c.Pods().Create(ctx, pod); err != nil && !client.IsAlreadyExists(err) {
				sc.rec.Eventf(s, record.Warning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %s", pod.Metadata.Name, s.Metadata.Name, client.Message(err))
				if ordered {
					return err
				}
				errs = append(errs, err)
				continue
			}
			sc.rec.Eventf(s, record.Normal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Metadata.Name, s.Metadata.Name)
			if ordered {
				return nil // the next ordinal waits for this one
			}
			continue
		}
		if ordered && !isHealthy(p, minReady, now) {
			return nil // waits for Running and Ready
		}
	}
	for _, i := range condemned {
		p := byOrdinal[i]
		if p.Metadata.DeletionTimestamp != nil {
			if ordered {
				return nil // each successor gone before the next
			}
			continue
		}
		if ordered {
			for j := 0; j < replicas; j++ {
				if q := byOrdinal[j]; q == nil || !isHealthy(q, minReady, now) {
					return nil
				}
			}
		}
		uid := p.Metadata.Uid
		if _, err := sc.c.Pods().Delete(ctx, p.Metadata.Namespace, p.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil && !client.IsNotFound(err) {
			return err
		}
		sc.rec.Eventf(s, record.Normal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Metadata.Name, s.Metadata.Name)
		if ordered {
			return nil
		}
	}
	return errors.Join(errs...)
}

// rollingUpdate replaces outdated pods from the highest ordinal down to the
// partition, at most maxUnavailable at a time (1 by default), each waiting
// until the others are Running and Ready.
func (sc *Controller) rollingUpdate(ctx context.Context, s *v1.StatefulSet, byOrdinal map[int]*v1.Pod, replicas int, minReady int32, now time.Time, update *v1.ControllerRevision, partition int) error {
	maxUnavailable := 1
	if mu := s.Spec.GetUpdateStrategy().GetRollingUpdate().GetMaxUnavailable(); mu != "" {
		v, pct, err := api.ParseIntOrPercent(mu)
		if err == nil {
			if pct {
				v = v * replicas / 100
			}
			maxUnavailable = max(v, 1)
		}
	}
	unavailable := 0
	for i := 0; i < replicas; i++ {
		if p := byOrdinal[i]; p == nil || !isHealthy(p, minReady, now) {
			unavailable++
		}
	}
	for i := replicas - 1; i >= partition && i >= 0; i-- {
		p := byOrdinal[i]
		if p == nil || p.Metadata.Labels[RevisionLabel] == update.Metadata.Name {
			continue
		}
		if unavailable >= maxUnavailable {
			return nil
		}
		if p.Metadata.DeletionTimestamp != nil {
			continue
		}
		uid := p.Metadata.Uid
		if _, err := sc.c.Pods().Delete(ctx, p.Metadata.Namespace, p.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil && !client.IsNotFound(err) {
			return err
		}
		sc.rec.Eventf(s, record.Normal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Metadata.Name, s.Metadata.Name)
		if isHealthy(p, minReady, now) {
			unavailable++
		}
	}
	return nil
}

func (sc *Controller) syncStatus(ctx context.Context, s *v1.StatefulSet, byOrdinal map[int]*v1.Pod, replicas int, minReady int32, now time.Time, current, update *v1.ControllerRevision) error {
	st := &v1.StatefulSetStatus{ObservedGeneration: s.Metadata.Generation, CurrentRevision: current.Metadata.Name, UpdateRevision: update.Metadata.Name}
	if s.Status != nil {
		st.CollisionCount = s.Status.CollisionCount
	}
	for _, p := range byOrdinal {
		if api.IsPodTerminal(p) {
			continue
		}
		st.Replicas++
		if controller.IsPodReady(p) && p.Metadata.DeletionTimestamp == nil {
			st.ReadyReplicas++
			if controller.IsPodAvailable(p, minReady, now) {
				st.AvailableReplicas++
			}
		}
		switch p.Metadata.Labels[RevisionLabel] {
		case current.Metadata.Name:
			st.CurrentReplicas++
		}
		if p.Metadata.Labels[RevisionLabel] == update.Metadata.Name {
			st.UpdatedReplicas++
		}
	}
	// The update is done when every replica runs it and is ready.
	if int(st.UpdatedReplicas) == replicas && int(st.ReadyReplicas) == replicas && int(st.Replicas) == replicas {
		st.CurrentRevision = update.Metadata.Name
		st.CurrentReplicas = st.UpdatedReplicas
	}
	if minReady > 0 && st.ReadyReplicas > st.AvailableReplicas {
		sc.queue.AddAfter(controller.KeyOf(s), time.Duration(minReady)*time.Second)
	}
	if proto.Equal(st, s.Status) {
		return nil
	}
	_, err := sc.c.StatefulSets().UpdateStatus(ctx, &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: s.Metadata.Name, Namespace: s.Metadata.Namespace, Uid: s.Metadata.Uid}, Status: st})
	if client.IsNotFound(err) {
		return nil
	}
	return err
}

// truncateHistory keeps revisionHistoryLimit revisions besides the live ones.
func (sc *Controller) truncateHistory(ctx context.Context, s *v1.StatefulSet, revs []*v1.ControllerRevision, current, update *v1.ControllerRevision) error {
	limit := int(s.Spec.GetRevisionHistoryLimit())
	live := map[string]bool{current.Metadata.Name: true, update.Metadata.Name: true}
	for _, p := range sc.pods.List(func(p *v1.Pod) bool { return p.Metadata.Namespace == s.Metadata.Namespace }) {
		if ref := controller.ControllerRef(p.Metadata); ref != nil && ref.Uid == s.Metadata.Uid {
			live[p.Metadata.Labels[RevisionLabel]] = true
		}
	}
	var old []*v1.ControllerRevision
	for _, r := range revs {
		if !live[r.Metadata.Name] {
			old = append(old, r)
		}
	}
	for len(old) > limit {
		r := old[0]
		old = old[1:]
		if _, err := sc.c.ControllerRevisions().Delete(ctx, r.Metadata.Namespace, r.Metadata.Name, nil); err != nil && !client.IsNotFound(err) {
			return err
		}
	}
	return nil
}
