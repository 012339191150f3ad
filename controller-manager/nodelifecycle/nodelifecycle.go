// Package nodelifecycle watches node heartbeats (Leases in kube-node-lease):
// a node silent for the grace period becomes Ready=Unknown with the
// unreachable taints, its pods Ready=False and phase Unknown (kubelite's
// documented choice; Kubernetes leaves the phase); after the eviction
// timeout its pods are deleted so that their controllers replace them. When
// the node reports again, the taints go and its kubelet restores the pods'
// real status.
package nodelifecycle

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/client-go/util/retry"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Taint keys Kubernetes uses for a node that stopped reporting.
const (
	TaintUnreachable = "node.kubernetes.io/unreachable"
)

// Config tunes the controller.
type Config struct {
	MonitorPeriod   time.Duration // how often nodes are checked (5 s)
	GracePeriod     time.Duration // silence before Unknown (50 s)
	EvictionTimeout time.Duration // unreachable pods' default toleration (300 s)
}

// Controller is the node lifecycle controller.
type Controller struct {
	cfg    Config
	c      *client.Client
	rec    *record.Recorder
	nodes  *client.Informer[*v1.Node]
	leases *client.Informer[*v1.Lease]
	pods   *client.Informer[*v1.Pod]

	mu       sync.Mutex           // guards lastSeen and seenRV
	lastSeen map[string]time.Time // node -> when its lease last changed, on our clock
	seenRV   map[string]string
}

// New wires the controller to shared informers (leases of kube-node-lease).
func New(cfg Config, c *client.Client, rec *record.Recorder, nodes *client.Informer[*v1.Node], leases *client.Informer[*v1.Lease], pods *client.Informer[*v1.Pod]) *Controller {
	nc := &Controller{cfg: cfg, c: c, rec: rec, nodes: nodes, leases: leases, pods: pods, lastSeen: map[string]time.Time{}, seenRV: map[string]string{}}
	observe := func(l *v1.Lease) {
		if l.Metadata.Namespace != api.NodeLeaseNamespace {
			return
		}
		nc.mu.Lock()
		if nc.seenRV[l.Metadata.Name] != l.Metadata.ResourceVersion {
			nc.seenRV[l.Metadata.Name] = l.Metadata.ResourceVersion
			nc.lastSeen[l.Metadata.Name] = time.Now()
		}
		nc.mu.Unlock()
	}
	leases.AddHandler(client.Handler[*v1.Lease]{OnAdd: observe, OnUpdate: func(_, l *v1.Lease) { observe(l) }})
	return nc
}

// Run checks nodes every MonitorPeriod until ctx ends.
func (nc *Controller) Run(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(nc.cfg.MonitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, n := range nc.nodes.List(nil) {
			nc.check(ctx, n, start)
		}
	}
}

func readyCondition(n *v1.Node) *v1.NodeCondition {
	for _, c := range n.GetStatus().GetConditions() {
		if c.Type == "Ready" {
			return c
		}
	}
	return nil
}

func hasTaint(n *v1.Node, key string) bool {
	for _, t := range n.GetSpec().GetTaints() {
		if t.Key == key {
			return true
		}
	}
	return false
}

func (nc *Controller) check(ctx context.Context, n *v1.Node, start time.Time) {
	name := n.Metadata.Name
	nc.mu.Lock()
	seen, ok := nc.lastSeen[name]
	nc.mu.Unlock()
	if !ok {
		seen = start // a node never seen gets the grace period from our start
	}
	silent := time.Since(seen) > nc.cfg.GracePeriod
	ready := readyCondition(n)
	switch {
	case silent && (ready == nil || ready.Status != "Unknown"):
		nc.markUnknown(ctx, n)
	case silent:
		nc.evict(ctx, n)
	case !silent && hasTaint(n, TaintUnreachable) && ready != nil && ready.Status == "True":
		nc.untaint(ctx, n)
	}
}

// markUnknown: node conditions Unknown, unreachable taints, pods Unknown.
func (nc *Controller) markUnknown(ctx context.Context, n *v1.Node) {
	slog.Warn("node stopped reporting; marking it Unknown", "node", n.Metadata.Name, "grace", nc.cfg.GracePeriod)
	now := timestamppb.Now()
	upd := proto.Clone(n).(*v1.Node)
	if upd.Spec == nil {
		upd.Spec = &v1.NodeSpec{}
	}
	if !hasTaint(upd, TaintUnreachable) {
		upd.Spec.Taints = append(upd.Spec.Taints,
			&v1.Taint{Key: TaintUnreachable, Effect: "NoExecute", TimeAdded: now},
			&v1.Taint{Key: TaintUnreachable, Effect: "NoSchedule", TimeAdded: now})
	}
	out, err := nc.c.Nodes().Update(ctx, upd)
	if err != nil {
		slog.Warn("cannot taint node", "node", n.Metadata.Name, "err", client.Message(err))
		return
	}
	for _, c := range out.GetStatus().GetConditions() {
		if c.Status != "Unknown" {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.", now
		}
	}
	if _, err := nc.c.Nodes().UpdateStatus(ctx, out); err != nil {
		slog.Warn("cannot mark node Unknown", "node", n.Metadata.Name, "err", client.Message(err))
		return
	}
	nc.rec.Eventf(n, record.Normal, "NodeNotReady", "Node %s status is now: NodeNotReady", n.Metadata.Name)
	for _, p := range nc.podsOn(n.Metadata.Name) {
		changed, err := nc.markPodUnknown(ctx, p, now)
		switch {
		case err != nil && !client.IsNotFound(err):
			slog.Warn("cannot mark pod Unknown", "pod", api.NamespacedName(p), "err", client.Message(err))
		case changed:
			nc.rec.Eventf(p, record.Warning, "NodeNotReady", "Node is not ready")
		}
	}
}

// markPodUnknown sets a pod of a lost node to phase Unknown, not ready. It
// writes with the resourceVersion it read, never blindly: if the pod
// changed since (its kubelet wrote a last status before the node went
// silent), the write conflicts, and the pod is read again and decided
// again, so a terminal status is never overwritten. It says whether it
// wrote.
func (nc *Controller) markPodUnknown(ctx context.Context, p *v1.Pod, now *timestamppb.Timestamp) (bool, error) {
	changed := false
	cached := true
	err := retry.OnError(retry.DefaultRetry, client.IsConflict, func() error {
		if !cached {
			fresh, err := nc.c.Pods().Get(ctx, p.Metadata.Namespace, p.Metadata.Name)
			if err != nil {
				return err
			}
			if fresh.Metadata.Uid != p.Metadata.Uid {
				return nil // another pod of that name: ours is gone
			}
			p = fresh
		}
		cached = false
		st := unknownPodStatus(p, now)
		if st == nil {
			return nil
		}
		m := p.Metadata
		u := &v1.Pod{Metadata: &v1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Uid: m.Uid, ResourceVersion: m.ResourceVersion}, Status: st}
		if _, err := nc.c.Pods().UpdateStatus(ctx, u); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}

// unknownPodStatus is the status of a pod whose node stopped reporting:
// phase Unknown, Ready and ContainersReady False (reason NodeLost), no
// container ready. It is nil when there is nothing to change: the pod is
// terminal (Succeeded and Failed are final; only the kubelet knew them),
// or already marked.
func unknownPodStatus(p *v1.Pod, now *timestamppb.Timestamp) *v1.PodStatus {
	if api.IsPodTerminal(p) {
		return nil
	}
	st := proto.Clone(p.GetStatus()).(*v1.PodStatus)
	if st == nil {
		st = &v1.PodStatus{}
	}
	st.Phase = "Unknown"
	for _, c := range st.Conditions {
		if (c.Type == "Ready" || c.Type == "ContainersReady") && c.Status != "False" {
			c.Status, c.Reason, c.LastTransitionTime = "False", "NodeLost", now
		}
	}
	for _, cs := range st.ContainerStatuses {
		cs.Ready = false
	}
	if proto.Equal(st, p.GetStatus()) {
		return nil
	}
	return st
}

func (nc *Controller) podsOn(node string) []*v1.Pod {
	return nc.pods.List(func(p *v1.Pod) bool { return p.GetSpec().GetNodeName() == node })
}

// evict deletes the pods of an unreachable node whose toleration of the
// unreachable taint ran out (EvictionTimeout unless the pod says otherwise).
func (nc *Controller) evict(ctx context.Context, n *v1.Node) {
	var since time.Time
	for _, t := range n.GetSpec().GetTaints() {
		if t.Key == TaintUnreachable && t.Effect == "NoExecute" && t.TimeAdded != nil {
			since = t.TimeAdded.AsTime()
		}
	}
	if since.IsZero() {
		return
	}
	for _, p := range nc.podsOn(n.Metadata.Name) {
		if p.Metadata.DeletionTimestamp != nil {
			continue
		}
		tolerate := nc.cfg.EvictionTimeout
		forever := false
		for _, t := range p.GetSpec().GetTolerations() {
			if (t.Key == TaintUnreachable || (t.Key == "" && t.Operator == "Exists")) && (t.Effect == "" || t.Effect == "NoExecute") {
				if t.TolerationSeconds == nil {
					forever = true
				} else {
					tolerate = api.SecondsToDuration(*t.TolerationSeconds)
				}
			}
		}
		if forever || time.Since(since) < tolerate {
			continue
		}
		uid := p.Metadata.Uid
		if _, err := nc.c.Pods().Delete(ctx, p.Metadata.Namespace, p.Metadata.Name, &v1.DeleteOptions{Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil && !client.IsNotFound(err) {
			slog.Warn("cannot evict pod", "pod", api.NamespacedName(p), "err", client.Message(err))
			continue
		}
		slog.Info("evicted pod from unreachable node", "pod", api.NamespacedName(p), "node", n.Metadata.Name)
		nc.rec.Eventf(p, record.Normal, "TaintManagerEviction", "Marking for deletion Pod %s", api.NamespacedName(p))
	}
}

// untaint removes the unreachable taints of a node that reports again.
func (nc *Controller) untaint(ctx context.Context, n *v1.Node) {
	upd := proto.Clone(n).(*v1.Node)
	var keep []*v1.Taint
	for _, t := range upd.Spec.Taints {
		if t.Key != TaintUnreachable {
			keep = append(keep, t)
		}
	}
	upd.Spec.Taints = keep
	if _, err := nc.c.Nodes().Update(ctx, upd); err != nil {
		slog.Warn("cannot untaint node", "node", n.Metadata.Name, "err", client.Message(err))
		return
	}
	slog.Info("node reports again", "node", n.Metadata.Name)
	nc.rec.Eventf(n, record.Normal, "NodeReady", "Node %s status is now: NodeReady", n.Metadata.Name)
}
