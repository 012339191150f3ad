package pvcprotection

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func TestCanRemoveProtection(t *testing.T) {
	deleting := func(finalizers ...string) *v1.PersistentVolumeClaim {
		return &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-0", Namespace: "default",
			DeletionTimestamp: timestamppb.Now(), Finalizers: finalizers}}
	}
	live := &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data-web-0", Namespace: "default", Finalizers: []string{api.FinalizerPVCProtection}}}
	pod := func(ns, claim, phase string, terminating bool) *v1.Pod {
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: ns},
			Spec:   &v1.PodSpec{Volumes: []*v1.Volume{{Name: "v", EmptyDir: &v1.EmptyDirVolumeSource{}}, {Name: "data", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
			Status: &v1.PodStatus{Phase: phase}}
		if terminating {
			p.Metadata.DeletionTimestamp = timestamppb.Now()
		}
		return p
	}
	cases := []struct {
		name  string
		claim *v1.PersistentVolumeClaim
		pods  []*v1.Pod
		want  bool
	}{
		{"deleted, no pods", deleting(api.FinalizerPVCProtection), nil, true},
		{"deleted, pods use other claims", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("default", "data-web-1", "Running", false), pod("default", "data-web-01", "Running", false)}, true},
		{"deleted, same name in another namespace", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("other", "data-web-0", "Running", false)}, true},
		{"deleted, a running pod uses it", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("default", "data-web-0", "Running", false)}, false},
		{"deleted, a terminating pod uses it", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("default", "data-web-0", "Running", true)}, false},
		{"deleted, a finished pod still in etcd uses it", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("default", "data-web-0", "Succeeded", false)}, false},
		{"deleted, a pending unscheduled pod uses it", deleting(api.FinalizerPVCProtection), []*v1.Pod{pod("default", "data-web-0", "Pending", false)}, false},
		{"not deleted", live, nil, false},
		{"deleted, protection already gone", deleting(api.FinalizerClaimFolder), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := CanRemoveProtection(c.claim, c.pods); got != c.want {
				t.Errorf("CanRemoveProtection = %v, want %v", got, c.want)
			}
		})
	}
}
