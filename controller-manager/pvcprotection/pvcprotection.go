// Package pvcprotection is Kubernetes' pvc-protection controller: a claim
// being deleted keeps the kubernetes.io/pvc-protection finalizer (added by
// the apiserver on create) until no pod in etcd names it, whatever the
// pod's phase and even while the pod terminates. So a claim's folder is
// never removed under a process that may still write to it.
package pvcprotection

import (
	"slices"

	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Controller removes the protection finalizer from unused deleted claims.
type Controller struct {
	c      *client.Client
	claims *client.Informer[*v1.PersistentVolumeClaim]
	pods   *client.Informer[*v1.Pod]
	queue  client.Queue
}

// New wires the controller to shared informers.
func New(c *client.Client, claims *client.Informer[*v1.PersistentVolumeClaim], pods *client.Informer[*v1.Pod]) *Controller {
	pc := &Controller{c: c, claims: claims, pods: pods, queue: client.NewQueue("pvcprotection")}
	claimChanged := func(cl *v1.PersistentVolumeClaim) {
		if NeedsCheck(cl) {
			pc.queue.Add(controller.KeyOf(cl))
		}
	}
	claims.AddHandler(client.Handler[*v1.PersistentVolumeClaim]{OnAdd: claimChanged, OnUpdate: func(_, cl *v1.PersistentVolumeClaim) { claimChanged(cl) }})
	// A pod that leaves etcd may free its claims.
	pods.AddHandler(client.Handler[*v1.Pod]{OnDelete: func(p *v1.Pod) {
		for _, name := range ClaimsOf(p) {
			pc.queue.Add(p.Metadata.Namespace + "/" + name)
		}
	}})
	return pc
}

// Run runs workers until ctx ends.
func (pc *Controller) Run(ctx context.Context, workers int) {
	controller.RunWorkers(ctx, "pvcprotection", pc.queue, workers, pc.sync)
}

// NeedsCheck reports a claim being deleted that still has the protection
// finalizer.
func NeedsCheck(cl *v1.PersistentVolumeClaim) bool {
	if cl.GetMetadata().GetDeletionTimestamp() == nil {
		return false
	}
	return slices.Contains(cl.GetMetadata().GetFinalizers(), api.FinalizerPVCProtection)
}

// ClaimsOf lists the claims a pod names in its volumes (a StatefulSet's
// pod names its generated claims there too).
func ClaimsOf(p *v1.Pod) []string { return api.PodClaimNames(p) }

// UsedBy returns the pods among pods that use the claim: same namespace,
// a volume naming it. Every pod counts, whatever its phase, scheduled or
// not, terminating or not: only a pod gone from etcd lets go.
func UsedBy(cl *v1.PersistentVolumeClaim, pods []*v1.Pod) []*v1.Pod {
	var out []*v1.Pod
	for _, p := range pods {
		if api.PodUsesClaim(p, cl.GetMetadata().GetNamespace(), cl.GetMetadata().GetName()) {
			out = append(out, p)
		}
	}
	return out
}

// CanRemoveProtection is the decision: the claim is being deleted, has
// the finalizer, and no pod uses it.
func CanRemoveProtection(cl *v1.PersistentVolumeClaim, pods []*v1.Pod) bool {
	return NeedsCheck(cl) && len(UsedBy(cl, pods)) == 0
}

func (pc *Controller) sync(ctx context.Context, key string) error {
	cached, ok := pc.claims.Get(key)
	if !ok || !NeedsCheck(cached) {
		return nil
	}
	ns := cached.Metadata.Namespace
	if !CanRemoveProtection(cached, pc.pods.List(func(p *v1.Pod) bool { return p.Metadata.Namespace == ns })) {
		return nil // the pod's removal wakes us
	}
	// The cache may lag a pod just created: ask the apiserver before
	// letting go, as Kubernetes does.
	live, _, err := pc.c.Pods().List(ctx, &v1.ListRequest{Namespace: ns})
	if err != nil {
		return err
	}
	if !CanRemoveProtection(cached, live) {
		return nil
	}
	upd := proto.Clone(cached).(*v1.PersistentVolumeClaim)
	upd.Metadata.Finalizers = api.WithoutFinalizer(upd.Metadata.Finalizers, api.FinalizerPVCProtection)
	if _, err := pc.c.PersistentVolumeClaims().Update(ctx, upd); err != nil {
		if client.IsNotFound(err) {
			return nil
		}
		return err
	}
	slog.Info("claim no longer in use: protection removed", "claim", key)
	return nil
}
