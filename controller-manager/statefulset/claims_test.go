package statefulset

import (
	"testing"

	"github.com/kubelite/kubelite/internal/controller"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func setWith(whenDeleted, whenScaled string) *v1.StatefulSet {
	return &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: "web", Namespace: "default", Uid: "set-uid"},
		Spec: &v1.StatefulSetSpec{Selector: &v1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PersistentVolumeClaimRetentionPolicy: &v1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: whenDeleted, WhenScaled: whenScaled},
			VolumeClaimTemplates:                 []*v1.PersistentVolumeClaimTemplate{{Metadata: &v1.ObjectMeta{Name: "data", Labels: map[string]string{"tier": "db"}}}}}}
}

// owners summarises refs as "Kind/uid" with "*" for a controller ref.
func owners(refs []*v1.OwnerReference) []string {
	var out []string
	for _, r := range refs {
		s := r.Kind + "/" + r.Uid
		if r.GetController() {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

func TestClaimOwnerRefsFollowTheRetentionPolicy(t *testing.T) {
	pod := &v1.ObjectMeta{Name: "web-2", Uid: "pod-uid"}
	f := false
	other := &v1.OwnerReference{ApiVersion: "v1", Kind: "ConfigMap", Name: "x", Uid: "other-uid", Controller: &f}
	otherController := &v1.OwnerReference{ApiVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", Uid: "rs-uid", Controller: new(bool)}
	*otherController.Controller = true
	setRef := setControllerRef(setWith("Delete", "Delete"))
	podRef := podControllerRef(pod)
	blockingSetRef := controller.NewControllerRef(setWith("Delete", "Delete"))
	blockingPodRef := podControllerRef(pod)
	blockingPodRef.BlockOwnerDeletion = new(bool)
	*blockingPodRef.BlockOwnerDeletion = true
	staleSetRef := controller.NewControllerRef(setWith("Delete", "Delete"))
	staleSetRef.Uid = "old-set-uid"
	stalePodRef := podControllerRef(&v1.ObjectMeta{Name: "web-2", Uid: "old-pod-uid"})
	nonController := &v1.OwnerReference{ApiVersion: "apps/v1", Kind: "StatefulSet", Name: "web", Uid: "set-uid"}

	cases := []struct {
		name                    string
		whenDeleted, whenScaled string
		refs                    []*v1.OwnerReference
		scaledDown              bool
		want                    []string
		changed                 bool
	}{
		{"retain/retain: no owner", "Retain", "Retain", nil, false, nil, false},
		{"retain/retain: our refs removed, others kept", "Retain", "Retain", []*v1.OwnerReference{other, setRef, podRef}, true, []string{"ConfigMap/other-uid"}, true},
		{"whenDeleted Delete: the set owns the claim", "Delete", "Retain", nil, false, []string{"StatefulSet/set-uid*"}, true},
		{"whenDeleted Delete: still the set when scaled down", "Delete", "Retain", nil, true, []string{"StatefulSet/set-uid*"}, true},
		{"whenDeleted Delete: up to date", "Delete", "Retain", []*v1.OwnerReference{setRef}, false, []string{"StatefulSet/set-uid*"}, false},
		{"whenDeleted Delete: a non-controller ref becomes a controller ref", "Delete", "Retain", []*v1.OwnerReference{nonController}, false, []string{"StatefulSet/set-uid*"}, true},
		{"whenScaled Delete, in range: no owner", "Retain", "Delete", nil, false, nil, false},
		{"whenScaled Delete, in range again: the pod ref goes", "Retain", "Delete", []*v1.OwnerReference{podRef}, false, nil, true},
		{"whenScaled Delete, condemned: the pod owns the claim", "Retain", "Delete", nil, true, []string{"Pod/pod-uid*"}, true},
		{"both Delete, in range: the set", "Delete", "Delete", nil, false, []string{"StatefulSet/set-uid*"}, true},
		{"both Delete, condemned: the pod replaces the set", "Delete", "Delete", []*v1.OwnerReference{setRef}, true, []string{"Pod/pod-uid*"}, true},
		{"both Delete, scaled back up: the set replaces the pod", "Delete", "Delete", []*v1.OwnerReference{podRef}, false, []string{"StatefulSet/set-uid*"}, true},
		{"a blocking set ref (earlier kubelite) becomes non-blocking", "Delete", "Retain", []*v1.OwnerReference{blockingSetRef}, false, []string{"StatefulSet/set-uid*"}, true},
		{"a blocking pod ref (earlier kubelite) becomes non-blocking", "Retain", "Delete", []*v1.OwnerReference{blockingPodRef}, true, []string{"Pod/pod-uid*"}, true},
		{"a stale set ref: left for the collector", "Delete", "Delete", []*v1.OwnerReference{staleSetRef}, false, []string{"StatefulSet/old-set-uid*"}, false},
		{"a stale pod ref: left for the collector", "Retain", "Delete", []*v1.OwnerReference{stalePodRef}, true, []string{"Pod/old-pod-uid*"}, false},
		{"another controller: ours removed, none added", "Delete", "Delete", []*v1.OwnerReference{otherController, setRef}, false, []string{"ReplicaSet/rs-uid*"}, true},
		{"another controller, nothing of ours: untouched", "Delete", "Retain", []*v1.OwnerReference{otherController}, false, []string{"ReplicaSet/rs-uid*"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, changed := ClaimOwnerRefs(c.refs, setWith(c.whenDeleted, c.whenScaled), pod, c.scaledDown)
			if g := owners(got); !equal(g, c.want) || changed != c.changed {
				t.Errorf("got %v changed=%v, want %v changed=%v", g, changed, c.want, c.changed)
			}
			if changed {
				for _, r := range got {
					if r.GetBlockOwnerDeletion() && (r.Kind == "Pod" || r.Kind == "StatefulSet") {
						t.Errorf("%s ref blocks owner deletion: a foreground-deleted owner would wait for a claim pvc-protection holds for it", r.Kind)
					}
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClaimsForNameLabelsAndOwner(t *testing.T) {
	s := setWith("Delete", "Retain")
	cs := claimsFor(s, 3)
	if len(cs) != 1 {
		t.Fatalf("claims = %d, want 1", len(cs))
	}
	c := cs[0]
	if c.Metadata.Name != "data-web-3" || c.Metadata.Namespace != "default" {
		t.Errorf("claim %s/%s, want default/data-web-3", c.Metadata.Namespace, c.Metadata.Name)
	}
	if c.Metadata.Labels["app"] != "web" || c.Metadata.Labels["tier"] != "db" {
		t.Errorf("labels %v: want the template's and the selector's", c.Metadata.Labels)
	}
	if g := owners(c.Metadata.OwnerReferences); !equal(g, []string{"StatefulSet/set-uid*"}) {
		t.Errorf("owners %v, want the set", g)
	}
	if g := claimsFor(setWith("Retain", "Delete"), 0)[0].Metadata.OwnerReferences; len(g) != 0 {
		t.Errorf("whenScaled Delete: a new claim has owners %v, want none (its pod does not exist yet)", owners(g))
	}
}

func TestClaimIsStaleUnderWhenScaledDelete(t *testing.T) {
	owned := &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-2", OwnerReferences: []*v1.OwnerReference{podControllerRef(&v1.ObjectMeta{Name: "web-2", Uid: "old"})}}}
	free := &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-2"}}
	if !claimIsStale(setWith("Retain", "Delete"), owned, "web-2") {
		t.Error("a claim owned by an earlier web-2 must hold the new web-2 back")
	}
	if claimIsStale(setWith("Retain", "Delete"), free, "web-2") || claimIsStale(setWith("Retain", "Retain"), owned, "web-2") {
		t.Error("only a pod-owned claim under whenScaled Delete is stale")
	}
}

func TestClaimOfAnEarlierSetIsStale(t *testing.T) {
	ref := func(uid string) *v1.PersistentVolumeClaim {
		r := setControllerRef(setWith("Delete", "Retain"))
		r.Uid = uid
		return &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-2", OwnerReferences: []*v1.OwnerReference{r}}}
	}
	other := setControllerRef(setWith("Delete", "Retain"))
	other.Name, other.Uid = "web-db", "db-uid"
	for _, pol := range [][2]string{{"Delete", "Retain"}, {"Retain", "Retain"}, {"Delete", "Delete"}} {
		s := setWith(pol[0], pol[1])
		if !claimIsStale(s, ref("old-set-uid"), "web-2") {
			t.Errorf("%v: a claim owned by an earlier set web (another uid) must hold the pod back", pol)
		}
		if claimIsStale(s, ref("set-uid"), "web-2") {
			t.Errorf("%v: a claim owned by this set is not stale", pol)
		}
		if claimIsStale(s, &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-2", OwnerReferences: []*v1.OwnerReference{other}}}, "web-2") {
			t.Errorf("%v: a ref to a set of another name is not ours to judge", pol)
		}
	}
}
