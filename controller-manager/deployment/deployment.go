// Package deployment is the Deployment controller (reference §6): it rolls
// a Deployment's template out through ReplicaSets, RollingUpdate within
// maxSurge and maxUnavailable or Recreate, keeps revisions for rollback,
// scales proportionally mid-rollout, honours pause, and reports the
// Progressing and Available conditions.
package deployment

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Controller is the Deployment controller.
type Controller struct {
	c     *client.Client
	rec   *record.Recorder
	deps  *client.Informer[*v1.Deployment]
	rss   *client.Informer[*v1.ReplicaSet]
	pods  *client.Informer[*v1.Pod]
	queue client.Queue
	now   func() time.Time
}

// New wires the controller to shared informers.
func New(c *client.Client, rec *record.Recorder, deps *client.Informer[*v1.Deployment], rss *client.Informer[*v1.ReplicaSet], pods *client.Informer[*v1.Pod]) *Controller {
	dc := &Controller{c: c, rec: rec, deps: deps, rss: rss, pods: pods, queue: client.NewQueue("deployment"), now: time.Now}
	enqueue := func(d *v1.Deployment) { dc.queue.Add(controller.KeyOf(d)) }
	deps.AddHandler(client.Handler[*v1.Deployment]{OnAdd: enqueue, OnUpdate: func(_, d *v1.Deployment) { enqueue(d) }, OnDelete: enqueue})
	rsChanged := func(rs *v1.ReplicaSet) {
		if ref := controller.ControllerRef(rs.Metadata); ref != nil {
			if ref.Kind == "Deployment" {
				dc.queue.Add(rs.Metadata.Namespace + "/" + ref.Name)
			}
			return
		}
		for _, d := range deps.List(func(d *v1.Deployment) bool { return d.Metadata.Namespace == rs.Metadata.Namespace }) {
			if sel, err := api.LabelSelectorAsSelector(d.Spec.GetSelector()); err == nil && sel.Matches(labels.Set(rs.Metadata.Labels)) {
				enqueue(d)
			}
		}
	}
	rss.AddHandler(client.Handler[*v1.ReplicaSet]{OnAdd: rsChanged, OnUpdate: func(_, rs *v1.ReplicaSet) { rsChanged(rs) }, OnDelete: rsChanged})
	// Recreate waits for old pods to be gone: their removal wakes it.
	pods.AddHandler(client.Handler[*v1.Pod]{OnDelete: func(p *v1.Pod) {
		if ref := controller.ControllerRef(p.Metadata); ref != nil && ref.Kind == "ReplicaSet" {
			if rs, ok := rss.Get(p.Metadata.Namespace + "/" + ref.Name); ok {
				rsChanged(rs)
			}
		}
	}})
	return dc
}

// Run runs workers until ctx ends.
func (dc *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, "deployment", dc.queue, workers, dc.sync)
}

func (dc *Controller) sync(ctx context.Context, key string) error {
	cached, ok := dc.deps.Get(key)
	if !ok {
		return nil
	}
	d := proto.Clone(cached).(*v1.Deployment)
	rsList, err := dc.claimReplicaSets(ctx, d)
	if err != nil {
		return err
	}
	if d.Metadata.DeletionTimestamp != nil {
		return dc.syncStatus(ctx, d, rsList, nil, false)
	}
	if d.Spec.Paused || dc.isScalingEvent(d, rsList) {
		return dc.scaleOnly(ctx, d, rsList)
	}
	if d.Spec.GetStrategy().GetType() == "Recreate" {
		return dc.rolloutRecreate(ctx, d, rsList)
	}
	return dc.rolloutRolling(ctx, d, rsList)
}

// claimReplicaSets adopts matching orphans and releases owned ReplicaSets
// that no longer match.
func (dc *Controller) claimReplicaSets(ctx context.Context, d *v1.Deployment) ([]*v1.ReplicaSet, error) {
	sel, err := api.LabelSelectorAsSelector(d.Spec.GetSelector())
	if err != nil {
		return nil, nil
	}
	rss := dc.rss.List(func(rs *v1.ReplicaSet) bool { return rs.Metadata.Namespace == d.Metadata.Namespace })
	claimed, err := controller.Claim(ctx, d, sel, rss, false, dc.c.ReplicaSets().Update)
	if err != nil {
		return nil, err
	}
	// Copies: the rollout changes them in place as it scales.
	owned := make([]*v1.ReplicaSet, len(claimed))
	for i, rs := range claimed {
		owned[i] = proto.Clone(rs).(*v1.ReplicaSet)
	}
	sort.Slice(owned, func(i, j int) bool {
		return owned[i].Metadata.CreationTimestamp.AsTime().Before(owned[j].Metadata.CreationTimestamp.AsTime())
	})
	return owned, nil
}

// findNewRS returns the ReplicaSet whose template is the Deployment's, and
// the others (oldest first).
func findNewRS(d *v1.Deployment, rsList []*v1.ReplicaSet) (*v1.ReplicaSet, []*v1.ReplicaSet) {
	var newRS *v1.ReplicaSet
	var old []*v1.ReplicaSet
	for _, rs := range rsList {
		if newRS == nil && EqualTemplates(rs.Spec.GetTemplate(), d.Spec.GetTemplate()) {
			newRS = rs
			continue
		}
		old = append(old, rs)
	}
	return newRS, old
}

// isScalingEvent: the Deployment's replicas differ from what its active
// ReplicaSets were last sized for.
func (dc *Controller) isScalingEvent(d *v1.Deployment, rsList []*v1.ReplicaSet) bool {
	for _, rs := range rsList {
		if rs.Spec.GetReplicas() == 0 {
			continue
		}
		v, ok := rs.Metadata.GetAnnotations()[DesiredReplicasAnnotation]
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && int32(n) != d.Spec.GetReplicas() {
			return true
		}
	}
	return false
}

// getNewRS finds or creates the ReplicaSet of the current template and
// brings its revision up to date.
func (dc *Controller) getNewRS(ctx context.Context, d *v1.Deployment, rsList []*v1.ReplicaSet, create bool) (*v1.ReplicaSet, []*v1.ReplicaSet, error) {
	newRS, old := findNewRS(d, rsList)
	newRevision := MaxRevision(old) + 1
	if newRS != nil {
		if Revision(newRS) < newRevision || newRS.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			upd := proto.Clone(newRS).(*v1.ReplicaSet)
			setAnnotation(upd.Metadata, RevisionAnnotation, strconv.FormatInt(newRevision, 10))
			copyChangeCause(d, upd)
			upd.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			out, err := dc.c.ReplicaSets().Update(ctx, upd)
			if err != nil {
				return nil, nil, err
			}
			newRS = out
		}
		return newRS, old, dc.setDeploymentRevision(ctx, d, Revision(newRS))
	}
	if !create {
		return nil, old, nil
	}
	hash := controller.TemplateHash(d.Spec.Template, d.GetStatus().GetCollisionCount())
	tmpl := proto.Clone(d.Spec.Template).(*v1.PodTemplateSpec)
	if tmpl.Metadata == nil {
		tmpl.Metadata = &v1.ObjectMeta{}
	}
	if tmpl.Metadata.Labels == nil {
		tmpl.Metadata.Labels = map[string]string{}
	}
	tmpl.Metadata.Labels[PodTemplateHashLabel] = hash
	sel := proto.Clone(d.Spec.Selector).(*v1.LabelSelector)
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[PodTemplateHashLabel] = hash
	rsLabels := map[string]string{}
	for k, v := range tmpl.Metadata.Labels {
		rsLabels[k] = v
	}
	zero := int32(0)
	rs := &v1.ReplicaSet{
		Metadata: &v1.ObjectMeta{Name: d.Metadata.Name + "-" + hash, Namespace: d.Metadata.Namespace, Labels: rsLabels,
			Annotations:     map[string]string{RevisionAnnotation: strconv.FormatInt(newRevision, 10)},
			OwnerReferences: []*v1.OwnerReference{controller.NewControllerRef(d)}},
		Spec: &v1.ReplicaSetSpec{Replicas: &zero, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	copyChangeCause(d, rs)
	all := append(append([]*v1.ReplicaSet{}, old...), rs)
	replicas := NewRSNewReplicas(d, all, rs)
	rs.Spec.Replicas = &replicas
	setSizeAnnotations(d, rs)
	created, err := dc.c.ReplicaSets().Create(ctx, rs)
	if client.IsAlreadyExists(err) {
		// A ReplicaSet of that name with another template: a hash collision.
		cc := d.GetStatus().GetCollisionCount() + 1
		st := proto.Clone(d.GetStatus()).(*v1.DeploymentStatus)
		if st == nil {
			st = &v1.DeploymentStatus{}
		}
		st.CollisionCount = &cc
		_, uerr := dc.c.Deployments().UpdateStatus(ctx, &v1.Deployment{Metadata: &v1.ObjectMeta{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, Uid: d.Metadata.Uid}, Status: st})
		if uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("replica set %s exists with another template (hash collision %d); retrying", rs.Metadata.Name, cc)
	}
	if err != nil {
		dc.setCondition(ctx, d, &v1.DeploymentCondition{Type: "ReplicaFailure", Status: "True", Reason: "FailedCreate", Message: client.Message(err)})
		return nil, nil, err
	}
	if replicas > 0 {
		dc.rec.Eventf(d, record.Normal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Metadata.Name, replicas)
	}
	dc.setCondition(ctx, d, &v1.DeploymentCondition{Type: "Progressing", Status: "True", Reason: "NewReplicaSetCreated",
		Message: fmt.Sprintf("Created new replica set %q", created.Metadata.Name)})
	return created, old, dc.setDeploymentRevision(ctx, d, newRevision)
}

func setAnnotation(m *v1.ObjectMeta, k, v string) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[k] = v
}

func copyChangeCause(d *v1.Deployment, rs *v1.ReplicaSet) {
	if c, ok := d.Metadata.GetAnnotations()[ChangeCauseAnnotation]; ok {
		setAnnotation(rs.Metadata, ChangeCauseAnnotation, c)
	}
}

func setSizeAnnotations(d *v1.Deployment, rs *v1.ReplicaSet) {
	surge, _ := ResolveFenceposts(d)
	setAnnotation(rs.Metadata, DesiredReplicasAnnotation, strconv.Itoa(int(d.Spec.GetReplicas())))
	setAnnotation(rs.Metadata, MaxReplicasAnnotation, strconv.Itoa(int(d.Spec.GetReplicas()+surge)))
}

// setDeploymentRevision records the new ReplicaSet's revision on the Deployment.
func (dc *Controller) setDeploymentRevision(ctx context.Context, d *v1.Deployment, rev int64) error {
	want := strconv.FormatInt(rev, 10)
	if d.Metadata.GetAnnotations()[RevisionAnnotation] == want {
		return nil
	}
	setAnnotation(d.Metadata, RevisionAnnotation, want)
	out, err := dc.c.Deployments().Update(ctx, d)
	if err != nil {
		return err
	}
	d.Metadata = out.Metadata
	return nil
}

// scaleRS sets a ReplicaSet's size (and its size annotations).
func (dc *Controller) scaleRS(ctx context.Context, d *v1.Deployment, rs *v1.ReplicaSet, n int32) (*v1.ReplicaSet, error) {
	from := rs.Spec.GetReplicas()
	upd := proto.Clone(rs).(*v1.ReplicaSet)
	upd.Spec.Replicas = &n
	setSizeAnnotations(d, upd)
	if from == n && proto.Equal(upd, rs) {
		return rs, nil
	}
	out, err := dc.c.ReplicaSets().Update(ctx, upd)
	if err != nil {
		return nil, err
	}
	if from != n {
		dir := "up"
		if n < from {
			dir = "down"
		}
		dc.rec.Eventf(d, record.Normal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, rs.Metadata.Name, from, n)
	}
	rs.Metadata, rs.Spec, rs.Status = out.Metadata, out.Spec, out.Status
	return rs, nil
}

func (dc *Controller) rolloutRolling(ctx context.Context, d *v1.Deployment, rsList []*v1.ReplicaSet) error {
	newRS, old, err := dc.getNewRS(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*v1.ReplicaSet{}, old...), newRS)
	// Scale up the new ReplicaSet within maxSurge.
	if want := d.Spec.GetReplicas(); newRS.Spec.GetReplicas() > want {
		if _, err := dc.scaleRS(ctx, d, newRS, want); err != nil {
			return err
		}
		return dc.syncStatus(ctx, d, all, newRS, true)
	}
	if n := NewRSNewReplicas(d, all, newRS); n != newRS.Spec.GetReplicas() {
		if _, err := dc.scaleRS(ctx, d, newRS, n); err != nil {
			return err
		}
		return dc.syncStatus(ctx, d, all, newRS, true)
	}
	// Scale down old ReplicaSets within maxUnavailable.
	if scaled, err := dc.reconcileOld(ctx, d, all, old, newRS); err != nil || scaled {
		if err != nil {
			return err
		}
		return dc.syncStatus(ctx, d, all, newRS, true)
	}
	if complete(d, newRS, all) {
		if err := dc.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return dc.syncStatus(ctx, d, all, newRS, false)
}

// reconcileOld scales old ReplicaSets down, unhealthy pods first, keeping
// replicas - maxUnavailable available.
func (dc *Controller) reconcileOld(ctx context.Context, d *v1.Deployment, all, old []*v1.ReplicaSet, newRS *v1.ReplicaSet) (bool, error) {
	if SumReplicas(old) == 0 {
		return false, nil
	}
	maxScaledDown := MaxScaledDown(d, all, newRS)
	if maxScaledDown <= 0 {
		return false, nil
	}
	scaled := false
	// Unhealthy (unavailable) old pods go first: they serve nothing.
	var cleaned int32
	for _, rs := range old {
		if cleaned >= maxScaledDown {
			break
		}
		r, a := rs.Spec.GetReplicas(), rs.GetStatus().GetAvailableReplicas()
		if r == 0 || r <= a {
			continue
		}
		n := min(maxScaledDown-cleaned, r-a)
		if _, err := dc.scaleRS(ctx, d, rs, r-n); err != nil {
			return false, err
		}
		cleaned += n
		scaled = true
	}
	// Then available ones, down to the minimum available.
	minAvailable := d.Spec.GetReplicas() - MaxUnavailable(d)
	available := SumAvailable(all)
	if available <= minAvailable {
		return scaled, nil
	}
	total := available - minAvailable
	var done int32
	for _, rs := range old {
		if done >= total {
			break
		}
		r := rs.Spec.GetReplicas()
		if r == 0 {
			continue
		}
		n := min(r, total-done)
		if _, err := dc.scaleRS(ctx, d, rs, r-n); err != nil {
			return false, err
		}
		done += n
		scaled = true
	}
	return scaled, nil
}

// rolloutRecreate stops every old pod before starting new ones.
func (dc *Controller) rolloutRecreate(ctx context.Context, d *v1.Deployment, rsList []*v1.ReplicaSet) error {
	newRS, old, err := dc.getNewRS(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	scaled := false
	for _, rs := range old {
		if rs.Spec.GetReplicas() > 0 {
			if _, err := dc.scaleRS(ctx, d, rs, 0); err != nil {
				return err
			}
			scaled = true
		}
	}
	all := append(append([]*v1.ReplicaSet{}, old...), newRS)
	if scaled {
		return dc.syncStatus(ctx, d, all, newRS, true)
	}
	// Wait until no pod of an old ReplicaSet exists (terminating ones too).
	for _, rs := range old {
		uid := rs.Metadata.Uid
		if len(dc.pods.List(func(p *v1.Pod) bool {
			ref := controller.ControllerRef(p.Metadata)
			return ref != nil && ref.Uid == uid && !api.IsPodTerminal(p)
		})) > 0 {
			return dc.syncStatus(ctx, d, all, newRS, false)
		}
	}
	if newRS == nil {
		if newRS, old, err = dc.getNewRS(ctx, d, rsList, true); err != nil {
			return err
		}
		all = append(append([]*v1.ReplicaSet{}, old...), newRS)
	}
	if newRS.Spec.GetReplicas() != d.Spec.GetReplicas() {
		if _, err := dc.scaleRS(ctx, d, newRS, d.Spec.GetReplicas()); err != nil {
			return err
		}
		return dc.syncStatus(ctx, d, all, newRS, true)
	}
	if complete(d, newRS, all) {
		if err := dc.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return dc.syncStatus(ctx, d, all, newRS, false)
}

// scaleOnly handles a paused Deployment or a change of replicas: sizes
// change (proportionally across active ReplicaSets), templates do not roll.
func (dc *Controller) scaleOnly(ctx context.Context, d *v1.Deployment, rsList []*v1.ReplicaSet) error {
	newRS, old, err := dc.getNewRS(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	var active []*v1.ReplicaSet
	for _, rs := range rsList {
		if rs.Spec.GetReplicas() > 0 {
			active = append(active, rs)
		}
	}
	target := newRS
	if len(active) == 1 {
		target = active[0]
	}
	switch {
	case len(active) <= 1 && target != nil:
		if _, err := dc.scaleRS(ctx, d, target, d.Spec.GetReplicas()); err != nil {
			return err
		}
	case len(active) > 1:
		surge, _ := ResolveFenceposts(d)
		allowed := d.Spec.GetReplicas() + surge
		toAdd := allowed - SumReplicas(active)
		sizes := make([]int32, len(active))
		for i, rs := range active {
			sizes[i] = rs.Spec.GetReplicas()
		}
		if toAdd != 0 {
			next := ProportionalScale(sizes, toAdd)
			for i, rs := range active {
				if _, err := dc.scaleRS(ctx, d, rs, next[i]); err != nil {
					return err
				}
			}
		} else {
			for _, rs := range active {
				if _, err := dc.scaleRS(ctx, d, rs, rs.Spec.GetReplicas()); err != nil {
					return err
				}
			}
		}
	}
	all := old
	if newRS != nil {
		all = append(append([]*v1.ReplicaSet{}, old...), newRS)
	}
	return dc.syncStatus(ctx, d, all, newRS, false)
}

func complete(d *v1.Deployment, newRS *v1.ReplicaSet, all []*v1.ReplicaSet) bool {
	if newRS == nil {
		return false
	}
	r := d.Spec.GetReplicas()
	var replicas int32
	for _, rs := range all {
		if rs != nil {
			replicas += rs.GetStatus().GetReplicas()
		}
	}
	return newRS.GetStatus().GetReplicas() == r && newRS.GetStatus().GetAvailableReplicas() == r && replicas == r &&
		newRS.Spec.GetReplicas() == r
}

// cleanup deletes the oldest empty ReplicaSets beyond revisionHistoryLimit.
func (dc *Controller) cleanup(ctx context.Context, d *v1.Deployment, old []*v1.ReplicaSet) error {
	limit := int(d.Spec.GetRevisionHistoryLimit())
	var empty []*v1.ReplicaSet
	for _, rs := range old {
		if rs.Spec.GetReplicas() == 0 && rs.GetStatus().GetReplicas() == 0 && rs.Metadata.DeletionTimestamp == nil {
			empty = append(empty, rs)
		}
	}
	if len(empty) <= limit {
		return nil
	}
	sort.Slice(empty, func(i, j int) bool { return Revision(empty[i]) < Revision(empty[j]) })
	for _, rs := range empty[:len(empty)-limit] {
		uid := rs.Metadata.Uid
		if _, err := dc.c.ReplicaSets().Delete(ctx, rs.Metadata.Namespace, rs.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil && !client.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func findCondition(st *v1.DeploymentStatus, typ string) *v1.DeploymentCondition {
	for _, c := range st.GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

// putCondition sets a condition, keeping lastTransitionTime if the status
// did not change.
func putCondition(st *v1.DeploymentStatus, c *v1.DeploymentCondition, now time.Time) {
	c.LastUpdateTime = timestamppb.New(now)
	c.LastTransitionTime = timestamppb.New(now)
	for i, o := range st.Conditions {
		if o.Type == c.Type {
			if o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

func (dc *Controller) setCondition(ctx context.Context, d *v1.Deployment, c *v1.DeploymentCondition) {
	st := proto.Clone(d.GetStatus()).(*v1.DeploymentStatus)
	if st == nil {
		st = &v1.DeploymentStatus{}
	}
	putCondition(st, c, dc.now())
	out, err := dc.c.Deployments().UpdateStatus(ctx, &v1.Deployment{Metadata: &v1.ObjectMeta{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, Uid: d.Metadata.Uid}, Status: st})
	if err == nil {
		d.Status = out.Status
	}
}

// CalculateStatus is the Deployment's counters from its ReplicaSets.
func CalculateStatus(d *v1.Deployment, all []*v1.ReplicaSet, newRS *v1.ReplicaSet) *v1.DeploymentStatus {
	st := &v1.DeploymentStatus{ObservedGeneration: d.Metadata.Generation}
	if d.Status != nil {
		st.CollisionCount = d.Status.CollisionCount
	}
	var terminating int32
	for _, rs := range all {
		if rs == nil {
			continue
		}
		st.Replicas += rs.GetStatus().GetReplicas()
		st.ReadyReplicas += rs.GetStatus().GetReadyReplicas()
		st.AvailableReplicas += rs.GetStatus().GetAvailableReplicas()
		terminating += rs.GetStatus().GetTerminatingReplicas()
	}
	st.TerminatingReplicas = &terminating
	if newRS != nil {
		st.UpdatedReplicas = newRS.GetStatus().GetReplicas()
	}
	st.UnavailableReplicas = max(d.Spec.GetReplicas()-st.AvailableReplicas, 0)
	for _, c := range d.GetStatus().GetConditions() {
		st.Conditions = append(st.Conditions, proto.Clone(c).(*v1.DeploymentCondition))
	}
	return st
}

// syncStatus writes the counters and the Available and Progressing
// conditions; progressed says this sync changed something.
func (dc *Controller) syncStatus(ctx context.Context, d *v1.Deployment, all []*v1.ReplicaSet, newRS *v1.ReplicaSet, progressed bool) error {
	now := dc.now()
	st := CalculateStatus(d, all, newRS)
	old := d.GetStatus()
	if st.AvailableReplicas >= d.Spec.GetReplicas()-MaxUnavailable(d) {
		if c := findCondition(st, "Available"); c == nil || c.Status != "True" {
			putCondition(st, &v1.DeploymentCondition{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."}, now)
		}
	} else if c := findCondition(st, "Available"); c == nil || c.Status != "False" {
		putCondition(st, &v1.DeploymentCondition{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable", Message: "Deployment does not have minimum availability."}, now)
	}
	rsName := ""
	if newRS != nil {
		rsName = newRS.Metadata.Name
	}
	prog := findCondition(st, "Progressing")
	changed := progressed || old.GetReplicas() != st.Replicas || old.GetUpdatedReplicas() != st.UpdatedReplicas ||
		old.GetReadyReplicas() != st.ReadyReplicas || old.GetAvailableReplicas() != st.AvailableReplicas
	deadline := time.Duration(d.Spec.GetProgressDeadlineSeconds()) * time.Second
	switch {
	case d.Spec.Paused:
		if prog == nil || prog.Reason != "DeploymentPaused" {
			putCondition(st, &v1.DeploymentCondition{Type: "Progressing", Status: "Unknown", Reason: "DeploymentPaused", Message: "Deployment is paused"}, now)
		}
	case prog != nil && prog.Reason == "DeploymentPaused":
		putCondition(st, &v1.DeploymentCondition{Type: "Progressing", Status: "Unknown", Reason: "DeploymentResumed", Message: "Deployment is resumed"}, now)
	case newRS != nil && complete(d, newRS, all):
		if prog == nil || prog.Reason != "NewReplicaSetAvailable" {
			putCondition(st, &v1.DeploymentCondition{Type: "Progressing", Status: "True", Reason: "NewReplicaSetAvailable",
				Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName)}, now)
		}
	case changed && newRS != nil:
		if prog != nil && prog.Reason == "NewReplicaSetCreated" && !progressed {
			break
		}
		putCondition(st, &v1.DeploymentCondition{Type: "Progressing", Status: "True", Reason: "ReplicaSetUpdated",
			Message: fmt.Sprintf("ReplicaSet %q is progressing.", rsName)}, now)
	case prog != nil && prog.Status == "True" && prog.LastUpdateTime != nil && !prog.LastUpdateTime.AsTime().Add(deadline).After(now):
		putCondition(st, &v1.DeploymentCondition{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded",
			Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName)}, now)
		dc.rec.Eventf(d, record.Warning, "ProgressDeadlineExceeded", "ReplicaSet %q has timed out progressing.", rsName)
	}
	// Check the deadline again when it would pass.
	if p := findCondition(st, "Progressing"); p != nil && p.Status == "True" && p.Reason != "NewReplicaSetAvailable" && p.LastUpdateTime != nil && !d.Spec.Paused {
		left := p.LastUpdateTime.AsTime().Add(deadline).Sub(now)
		dc.queue.AddAfter(controller.KeyOf(d), max(left, 0)+100*time.Millisecond)
	}
	if proto.Equal(st, old) {
		return nil
	}
	_, err := dc.c.Deployments().UpdateStatus(ctx, &v1.Deployment{Metadata: &v1.ObjectMeta{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, Uid: d.Metadata.Uid}, Status: st})
	if client.IsNotFound(err) {
		return nil
	}
	return err
}
