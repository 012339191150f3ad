package statefulset

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// The controller never touches a filesystem: a claim is an API object it
// creates before the claim's first pod, and whose life it ties to the set
// or to a condemned pod through ownerReferences, by the retention policy
// (Kubernetes' createPersistentVolumeClaims and
// UpdatePodClaimForRetentionPolicy). The garbage collector removes what
// lost its owner; the pvc-protection controller holds a claim while a pod
// uses it; the kubelet of the claim's node removes the folder.

const (
	policyRetain = "Retain"
	policyDelete = "Delete"
)

// claimsFor builds the claims of ordinal i from the set's templates: name
// <template>-<set>-<i>, the template's labels plus the set's selector
// labels, and the owners the retention policy gives a claim of a pod that
// does not exist yet.
func claimsFor(s *v1.StatefulSet, i int) []*v1.PersistentVolumeClaim {
	var out []*v1.PersistentVolumeClaim
	for _, t := range s.Spec.GetVolumeClaimTemplates() {
		lbls := map[string]string{}
		for k, v := range t.GetMetadata().GetLabels() {
			lbls[k] = v
		}
		for k, v := range s.Spec.GetSelector().GetMatchLabels() {
			lbls[k] = v
		}
		var ann map[string]string
		if a := t.GetMetadata().GetAnnotations(); len(a) > 0 {
			ann = map[string]string{}
			for k, v := range a {
				ann[k] = v
			}
		}
		spec := &v1.PersistentVolumeClaimSpec{}
		if t.Spec != nil {
			spec = proto.Clone(t.Spec).(*v1.PersistentVolumeClaimSpec)
		}
		c := &v1.PersistentVolumeClaim{
			Metadata: &v1.ObjectMeta{Name: api.ClaimName(t.GetMetadata().GetName(), s.Metadata.Name, i),
				Namespace: s.Metadata.Namespace, Labels: lbls, Annotations: ann},
			Spec: spec,
		}
		pod := &v1.ObjectMeta{Name: PodName(s.Metadata.Name, i), Namespace: s.Metadata.Namespace}
		c.Metadata.OwnerReferences, _ = ClaimOwnerRefs(nil, s, pod, false)
		out = append(out, c)
	}
	return out
}

// ClaimOwnerRefs is UpdatePodClaimForRetentionPolicy as a pure function:
// the owner references a claim of pod should have under the set's
// retention policy, and whether they differ from refs. scaledDown says
// the pod's ordinal is outside the set's range (a condemned pod).
//
//	whenDeleted  whenScaled  pod in range   pod scaled down
//	Retain       Retain      -              -
//	Delete       Retain      set            set
//	Retain       Delete      -              pod
//	Delete       Delete      set            pod
//
// The owner added is a controller reference, as Kubernetes does since
// 1.32. References to the set and pod (by kind and name) are replaced;
// others are kept. A claim left alone: one with a stale reference (to an
// earlier set or pod of the same name: the garbage collector is about to
// take it), and one another controller owns (then only our references
// are dropped).
func ClaimOwnerRefs(refs []*v1.OwnerReference, s *v1.StatefulSet, pod *v1.ObjectMeta, scaledDown bool) ([]*v1.OwnerReference, bool) {
	pol := s.Spec.GetPersistentVolumeClaimRetentionPolicy()
	whenDeleted, whenScaled := pol.GetWhenDeleted(), pol.GetWhenScaled()
	if whenDeleted != policyDelete {
		whenDeleted = policyRetain
	}
	if whenScaled != policyDelete {
		whenScaled = policyRetain
	}
	isSet := func(r *v1.OwnerReference) bool { return r.Kind == "StatefulSet" && r.Name == s.Metadata.Name }
	isPod := func(r *v1.OwnerReference) bool { return r.Kind == "Pod" && r.Name == pod.GetName() }
	unexpected := false
	for _, r := range refs {
		switch {
		case isSet(r):
			if r.Uid != s.Metadata.Uid {
				return refs, false // stale: an earlier set's claim
			}
		case isPod(r):
			if r.Uid != pod.GetUid() {
				return refs, false // stale: an earlier pod's claim
			}
		case r.GetController():
			unexpected = true
		}
	}
	var out []*v1.OwnerReference
	for _, r := range refs {
		if !isSet(r) && !isPod(r) {
			out = append(out, r)
		}
	}
	if !unexpected {
		switch {
		case whenScaled == policyDelete && scaledDown:
			if pod.GetUid() != "" {
				out = append(out, podControllerRef(pod))
			}
		case whenDeleted == policyDelete:
			out = append(out, setControllerRef(s))
		}
	}
	return out, !sameRefs(out, refs)
}

// A claim's owner references never block their owner's deletion, as
// Kubernetes' setOwnerRef writes them (apiVersion, kind, name, uid and,
// since 1.32, controller): a condemned pod deleted in the foreground
// (delete sts --cascade=foreground during a scale-down) must not wait for
// its claim, which pvc-protection holds until that very pod is gone.
func podControllerRef(pod *v1.ObjectMeta) *v1.OwnerReference {
	t := true
	return &v1.OwnerReference{ApiVersion: "v1", Kind: "Pod", Name: pod.GetName(), Uid: pod.GetUid(), Controller: &t}
}

func setControllerRef(s *v1.StatefulSet) *v1.OwnerReference {
	r := controller.NewControllerRef(s)
	r.BlockOwnerDeletion = nil
	return r
}

func sameRefs(a, b []*v1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// claimIsStale reports a claim that should block creating ordinal's pod
// (Kubernetes' PodClaimIsStale): the garbage collector is about to take
// it. Under whenScaled: Delete, a claim owned by an earlier pod of that
// name (the pod to be created has no uid yet: any pod ref is stale); under
// any policy, a claim owned by an earlier set of our name (another uid).
func claimIsStale(s *v1.StatefulSet, c *v1.PersistentVolumeClaim, podName string) bool {
	whenScaledDelete := s.Spec.GetPersistentVolumeClaimRetentionPolicy().GetWhenScaled() == policyDelete
	for _, r := range c.GetMetadata().GetOwnerReferences() {
		switch {
		case r.Kind == "Pod" && r.Name == podName && whenScaledDelete:
			return true
		case r.Kind == "StatefulSet" && r.Name == s.Metadata.Name && r.Uid != s.Metadata.Uid:
			return true
		}
	}
	return false
}

// createClaims makes sure ordinal i's claims exist before its pod is
// created: a missing claim is created (AlreadyExists is fine: made by an
// earlier sync or by the user); a claim being deleted, or stale, holds the
// pod back until it is gone. Each claim is read live, right before the
// pod is created: the cache may not show yet that it is being deleted.
func (sc *Controller) createClaims(ctx context.Context, s *v1.StatefulSet, i int) error {
	pod := PodName(s.Metadata.Name, i)
	claims := sc.c.PersistentVolumeClaims()
	for _, want := range claimsFor(s, i) {
		ns, name := want.Metadata.Namespace, want.Metadata.Name
		cur, err := claims.Get(ctx, ns, name)
		if client.IsNotFound(err) {
			_, err = claims.Create(ctx, want)
			if err == nil {
				sc.rec.Eventf(s, record.Normal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success", name, pod, s.Metadata.Name)
				continue
			}
			if !client.IsAlreadyExists(err) {
				sc.rec.Eventf(s, record.Warning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %s", name, pod, s.Metadata.Name, client.Message(err))
				return err
			}
			cur, err = claims.Get(ctx, ns, name) // made meanwhile: check it
		}
		if err != nil {
			return fmt.Errorf("pvc %s: %w", name, err)
		}
		if cur.Metadata.DeletionTimestamp != nil {
			return fmt.Errorf("pvc %s is being deleted", name)
		}
		if claimIsStale(s, cur, pod) {
			return fmt.Errorf("pvc %s is stale: it belongs to an earlier pod %s or an earlier set %s", name, pod, s.Metadata.Name)
		}
	}
	return nil
}

// createMissingClaims creates the claims of running pods that have none:
// pods made before claims were API objects, or whose claim creation was
// lost. Their folders (same names) are adopted by the kubelet.
func (sc *Controller) createMissingClaims(ctx context.Context, s *v1.StatefulSet, byOrdinal map[int]*v1.Pod, replicas int) error {
	for i, p := range byOrdinal {
		if i >= replicas || p.Metadata.DeletionTimestamp != nil {
			continue
		}
		for _, want := range claimsFor(s, i) {
			if _, ok := sc.claims.Get(want.Metadata.Namespace + "/" + want.Metadata.Name); ok {
				continue
			}
			if _, err := sc.c.PersistentVolumeClaims().Create(ctx, want); err != nil && !client.IsAlreadyExists(err) {
				return fmt.Errorf("pvc %s: %w", want.Metadata.Name, err)
			}
		}
	}
	return nil
}

// syncClaimOwners sets the owner references of the claims of every pod of
// the set by the retention policy; a condemned pod becomes its claims'
// owner here, before it is deleted.
func (sc *Controller) syncClaimOwners(ctx context.Context, s *v1.StatefulSet, byOrdinal map[int]*v1.Pod, replicas int) error {
	for i, p := range byOrdinal {
		for _, t := range s.Spec.GetVolumeClaimTemplates() {
			name := api.ClaimName(t.GetMetadata().GetName(), s.Metadata.Name, i)
			cur, ok := sc.claims.Get(s.Metadata.Namespace + "/" + name)
			if !ok && i >= replicas {
				// About to delete the pod: the claim must not be missed
				// because the cache has not seen it yet.
				got, err := sc.c.PersistentVolumeClaims().Get(ctx, s.Metadata.Namespace, name)
				if err != nil && !client.IsNotFound(err) {
					return err
				}
				cur, ok = got, err == nil
			}
			if !ok || cur.Metadata.DeletionTimestamp != nil {
				continue
			}
			refs, changed := ClaimOwnerRefs(cur.Metadata.OwnerReferences, s, p.Metadata, i >= replicas)
			if !changed {
				continue
			}
			upd := proto.Clone(cur).(*v1.PersistentVolumeClaim)
			upd.Metadata.OwnerReferences = refs
			if _, err := sc.c.PersistentVolumeClaims().Update(ctx, upd); err != nil && !client.IsNotFound(err) {
				return fmt.Errorf("pvc %s owners: %w", name, err)
			}
		}
	}
	return nil
}

// claimChanged wakes the sets that make a claim of that name.
func (sc *Controller) claimChanged(c *v1.PersistentVolumeClaim) {
	for _, s := range sc.sets.List(func(s *v1.StatefulSet) bool { return s.Metadata.Namespace == c.Metadata.Namespace }) {
		for _, t := range s.Spec.GetVolumeClaimTemplates() {
			if ordinalOf(t.GetMetadata().GetName()+"-"+s.Metadata.Name, c.Metadata.Name) >= 0 {
				sc.queue.Add(controller.KeyOf(s))
			}
		}
	}
}
