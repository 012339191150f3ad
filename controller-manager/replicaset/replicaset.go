// Package replicaset is the ReplicaSet controller: it keeps spec.replicas
// pods matching the selector, adopting orphans, releasing pods that stop
// matching, creating in slow-start batches and deleting the pods Kubernetes
// would delete first.
package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"sync"
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

// BurstReplicas caps creations or deletions per sync (Kubernetes: 500).
const BurstReplicas = 500

// Controller is the ReplicaSet controller.
type Controller struct {
	c     *client.Client
	rec   *record.Recorder
	pods  *client.Informer[*v1.Pod]
	rss   *client.Informer[*v1.ReplicaSet]
	queue client.Queue
	exp   *controller.Expectations
}

// New wires the controller to shared informers.
func New(c *client.Client, rec *record.Recorder, pods *client.Informer[*v1.Pod], rss *client.Informer[*v1.ReplicaSet]) *Controller {
	rc := &Controller{c: c, rec: rec, pods: pods, rss: rss, queue: client.NewQueue("replicaset"), exp: controller.NewExpectations()}
	rss.AddHandler(client.Handler[*v1.ReplicaSet]{
		OnAdd:    func(rs *v1.ReplicaSet) { rc.queue.Add(controller.KeyOf(rs)) },
		OnUpdate: func(_, rs *v1.ReplicaSet) { rc.queue.Add(controller.KeyOf(rs)) },
		OnDelete: func(rs *v1.ReplicaSet) { rc.exp.Delete(controller.KeyOf(rs)); rc.queue.Add(controller.KeyOf(rs)) },
	})
	pods.AddHandler(client.Handler[*v1.Pod]{
		OnAdd: func(p *v1.Pod) {
			if key := rc.ownerKey(p); key != "" {
				rc.exp.Observed(key, true)
				rc.queue.Add(key)
				return
			}
			rc.enqueueMatching(p)
		},
		OnUpdate: func(old, p *v1.Pod) {
			if key := rc.ownerKey(old); key != "" {
				rc.queue.Add(key)
			}
			if key := rc.ownerKey(p); key != "" {
				if p.Metadata.DeletionTimestamp != nil && old.Metadata.DeletionTimestamp == nil {
					rc.exp.Observed(key, false) // graceful deletion started
				}
				rc.queue.Add(key)
			} else {
				rc.enqueueMatching(p)
			}
		},
		OnDelete: func(p *v1.Pod) {
			if key := rc.ownerKey(p); key != "" {
				if p.Metadata.DeletionTimestamp == nil {
					rc.exp.Observed(key, false)
				}
				rc.queue.Add(key)
			}
		},
	})
	return rc
}

func (rc *Controller) ownerKey(p *v1.Pod) string {
	ref := controller.ControllerRef(p.Metadata)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return ""
	}
	return p.Metadata.Namespace + "/" + ref.Name
}

// enqueueMatching wakes the ReplicaSets that could adopt an orphan.
func (rc *Controller) enqueueMatching(p *v1.Pod) {
	if controller.ControllerRef(p.Metadata) != nil || p.Metadata.DeletionTimestamp != nil {
		return
	}
	for _, rs := range rc.rss.List(func(rs *v1.ReplicaSet) bool { return rs.Metadata.Namespace == p.Metadata.Namespace }) {
		if sel, err := api.LabelSelectorAsSelector(rs.Spec.GetSelector()); err == nil && sel.Matches(labels.Set(p.Metadata.Labels)) {
			rc.queue.Add(controller.KeyOf(rs))
		}
	}
}

// Run runs workers until ctx ends.
func (rc *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, "replicaset", rc.queue, workers, rc.sync)
}

func (rc *Controller) sync(ctx context.Context, key string) error {
	cached, ok := rc.rss.Get(key)
	if !ok {
		rc.exp.Delete(key)
		return nil
	}
	rs := proto.Clone(cached).(*v1.ReplicaSet)
	sel, err := api.LabelSelectorAsSelector(rs.Spec.GetSelector())
	if err != nil {
		return nil // the apiserver validates selectors; nothing to do
	}
	pods, err := rc.claimPods(ctx, rs, sel)
	if err != nil {
		return err
	}
	var active []*v1.Pod
	for _, p := range pods {
		if controller.IsPodActive(p) {
			active = append(active, p)
		}
	}
	var manageErr error
	satisfied := rc.exp.Satisfied(key)
	slog.Debug("sync replicaset", "key", key, "active", len(active), "replicas", rs.Spec.GetReplicas(), "expectations_satisfied", satisfied)
	if satisfied && rs.Metadata.DeletionTimestamp == nil {
		manageErr = rc.manageReplicas(ctx, active, rs)
	}
	now := time.Now()
	st := CalculateStatus(rs, pods, manageErr, now)
	if !proto.Equal(st, rs.Status) {
		upd := &v1.ReplicaSet{Metadata: &v1.ObjectMeta{Name: rs.Metadata.Name, Namespace: rs.Metadata.Namespace, Uid: rs.Metadata.Uid}, Status: st}
		if _, err := rc.c.ReplicaSets().UpdateStatus(ctx, upd); err != nil && !client.IsNotFound(err) {
			return err
		}
	}
	// A pod that is ready but not yet available needs another look later.
	if mrs := rs.Spec.MinReadySeconds; mrs > 0 && st.ReadyReplicas > st.AvailableReplicas {
		rc.queue.AddAfter(key, time.Duration(mrs)*time.Second)
	}
	return manageErr
}

// claimPods adopts matching orphans and releases owned pods that no longer
// match; it returns the pods the ReplicaSet owns.
func (rc *Controller) claimPods(ctx context.Context, rs *v1.ReplicaSet, sel labels.Selector) ([]*v1.Pod, error) {
	pods := rc.pods.List(func(p *v1.Pod) bool { return p.Metadata.Namespace == rs.Metadata.Namespace })
	return controller.Claim(ctx, rs, sel, pods, true, rc.c.Pods().Update)
}

// manageReplicas creates or deletes pods to reach spec.replicas.
func (rc *Controller) manageReplicas(ctx context.Context, active []*v1.Pod, rs *v1.ReplicaSet) error {
	key := controller.KeyOf(rs)
	diff := len(active) - int(rs.Spec.GetReplicas())
	switch {
	case diff < 0:
		n := min(-diff, BurstReplicas)
		rc.exp.Expect(key, n, 0)
		created, err := SlowStartBatch(n, 1, func() error {
			p := controller.PodFromTemplate(rs.Spec.Template, rs, controller.PodsPrefix(rs.Metadata.Name))
			out, err := rc.c.Pods().Create(ctx, p)
			if err != nil {
				return err
			}
			rc.rec.Eventf(rs, record.Normal, "SuccessfulCreate", "Created pod: %s", out.Metadata.Name)
			return nil
		})
		if skipped := n - created; skipped > 0 {
			for i := 0; i < skipped; i++ {
				rc.exp.Observed(key, true) // those were never made
			}
		}
		if err != nil {
			rc.rec.Eventf(rs, record.Warning, "FailedCreate", "Error creating: %s", client.Message(err))
		}
		return err
	case diff > 0:
		n := min(diff, BurstReplicas)
		victims := PodsToDelete(active, n, rc.siblingsPerNode(active))
		rc.exp.Expect(key, 0, len(victims))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for _, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				uid := p.Metadata.Uid
				_, err := rc.c.Pods().Delete(ctx, p.Metadata.Namespace, p.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}})
				if err != nil {
					rc.exp.Observed(key, false)
					if client.IsNotFound(err) || client.IsConflict(err) {
						return
					}
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				rc.rec.Eventf(rs, record.Normal, "SuccessfulDelete", "Deleted pod: %s", p.Metadata.Name)
			}()
		}
		wg.Wait()
		return firstErr
	}
	return nil
}

func (rc *Controller) siblingsPerNode(pods []*v1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		if n := p.Spec.GetNodeName(); n != "" {
			out[n]++
		}
	}
	return out
}

// SlowStartBatch calls fn count times in batches of 1, 2, 4, … (starting at
// initial), in parallel within a batch; it stops after the first batch with
// an error and returns how many calls succeeded.
func SlowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, done := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		failed := len(errs)
		done += batch - failed
		if failed > 0 {
			return done, <-errs
		}
		remaining -= batch
	}
	return done, nil
}

// PodsToDelete picks n pods in Kubernetes' order (reference §5): unassigned
// before assigned; Pending < Unknown < Running; not ready before ready;
// lower pod-deletion-cost; more siblings on the same node; ready for less
// time; more restarts; newer. Times are compared in log2 buckets.
func PodsToDelete(pods []*v1.Pod, n int, siblings map[string]int) []*v1.Pod {
	ranked := append([]*v1.Pod(nil), pods...)
	now := time.Now()
	sort.SliceStable(ranked, func(i, j int) bool { return less(ranked[i], ranked[j], siblings, now) })
	if n > len(ranked) {
		n = len(ranked)
	}
	return ranked[:n]
}

var phaseRank = map[string]int{"Pending": 0, "Unknown": 1, "Running": 2}

func deletionCost(p *v1.Pod) int64 {
	v, err := strconv.ParseInt(p.Metadata.GetAnnotations()["controller.kubernetes.io/pod-deletion-cost"], 10, 32)
	if err != nil {
		return 0
	}
	return v
}

func logBucket(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Log2(d.Seconds() + 1))
}

func restarts(p *v1.Pod) int32 {
	var m int32
	for _, c := range p.GetStatus().GetContainerStatuses() {
		m = max(m, c.RestartCount)
	}
	return m
}

// less reports whether a should be deleted before b.
func less(a, b *v1.Pod, siblings map[string]int, now time.Time) bool {
	an, bn := a.Spec.GetNodeName(), b.Spec.GetNodeName()
	if (an == "") != (bn == "") {
		return an == ""
	}
	if pa, pb := phaseRank[a.GetStatus().GetPhase()], phaseRank[b.GetStatus().GetPhase()]; pa != pb {
		return pa < pb
	}
	if ra, rb := controller.IsPodReady(a), controller.IsPodReady(b); ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if sa, sb := siblings[an], siblings[bn]; sa != sb {
		return sa > sb
	}
	if controller.IsPodReady(a) && controller.IsPodReady(b) {
		ta, tb := readySince(a), readySince(b)
		if ba, bb := logBucket(now.Sub(ta)), logBucket(now.Sub(tb)); ba != bb {
			return ba < bb
		}
	}
	if ra, rb := restarts(a), restarts(b); ra != rb {
		return ra > rb
	}
	ca, cb := a.Metadata.GetCreationTimestamp().AsTime(), b.Metadata.GetCreationTimestamp().AsTime()
	if ba, bb := logBucket(now.Sub(ca)), logBucket(now.Sub(cb)); ba != bb {
		return ba < bb
	}
	return a.Metadata.Uid < b.Metadata.Uid
}

func readySince(p *v1.Pod) time.Time {
	if c := controller.PodReadyCondition(p); c != nil && c.LastTransitionTime != nil {
		return c.LastTransitionTime.AsTime()
	}
	return time.Time{}
}

// CalculateStatus is the ReplicaSet's status from its pods.
func CalculateStatus(rs *v1.ReplicaSet, pods []*v1.Pod, manageErr error, now time.Time) *v1.ReplicaSetStatus {
	st := &v1.ReplicaSetStatus{ObservedGeneration: rs.Metadata.Generation}
	tmplLabels := labels.Set(rs.Spec.GetTemplate().GetMetadata().GetLabels())
	var terminating int32
	for _, p := range pods {
		if p.Metadata.DeletionTimestamp != nil {
			terminating++
		}
		if !controller.IsPodActive(p) {
			continue
		}
		st.Replicas++
		if labels.SelectorFromSet(tmplLabels).Matches(labels.Set(p.Metadata.Labels)) {
			st.FullyLabeledReplicas++
		}
		if controller.IsPodReady(p) {
			st.ReadyReplicas++
			if controller.IsPodAvailable(p, rs.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
	}
	st.TerminatingReplicas = &terminating
	for _, c := range rs.GetStatus().GetConditions() {
		if c.Type == "ReplicaFailure" && manageErr != nil {
			st.Conditions = append(st.Conditions, c)
		}
	}
	if manageErr != nil && len(st.Conditions) == 0 {
		st.Conditions = []*v1.ReplicaSetCondition{{Type: "ReplicaFailure", Status: "True", Reason: "FailedCreate",
			Message: fmt.Sprint(client.Message(manageErr)), LastTransitionTime: timestamppb.New(now)}}
	}
	return st
}
