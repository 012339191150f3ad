package replicaset

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

var now = time.Now()

func pod(name, node, phase string, ready bool, mods ...func(*v1.Pod)) *v1.Pod {
	st := "False"
	if ready {
		st = "True"
	}
	p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: name, Uid: name, CreationTimestamp: timestamppb.New(now.Add(-time.Hour))},
		Spec: &v1.PodSpec{NodeName: node},
		Status: &v1.PodStatus{Phase: phase, Conditions: []*v1.PodCondition{{Type: "Ready", Status: st,
			LastTransitionTime: timestamppb.New(now.Add(-30 * time.Minute))}}}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func TestPodsToDeleteRanking(t *testing.T) {
	tests := []struct {
		name  string
		pods  []*v1.Pod
		first string
	}{
		{"unassigned first", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "", "Pending", false)}, "b"},
		{"pending before running", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n1", "Pending", false)}, "b"},
		{"not ready before ready", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n2", "Running", false)}, "b"},
		{"lower deletion cost first", []*v1.Pod{
			pod("a", "n1", "Running", true, func(p *v1.Pod) {
				p.Metadata.Annotations = map[string]string{"controller.kubernetes.io/pod-deletion-cost": "10"}
			}),
			pod("b", "n2", "Running", true, func(p *v1.Pod) {
				p.Metadata.Annotations = map[string]string{"controller.kubernetes.io/pod-deletion-cost": "-5"}
			})}, "b"},
		{"more siblings on the node first", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n2", "Running", true), pod("c", "n2", "Running", true)}, "b"},
		{"ready for less time first", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n2", "Running", true, func(p *v1.Pod) {
			p.Status.Conditions[0].LastTransitionTime = timestamppb.New(now.Add(-5 * time.Second))
		})}, "b"},
		{"more restarts first", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n2", "Running", true, func(p *v1.Pod) {
			p.Status.ContainerStatuses = []*v1.ContainerStatus{{RestartCount: 4}}
		})}, "b"},
		{"newer first", []*v1.Pod{pod("a", "n1", "Running", true), pod("b", "n2", "Running", true, func(p *v1.Pod) {
			p.Metadata.CreationTimestamp = timestamppb.New(now.Add(-2 * time.Second))
		})}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			siblings := map[string]int{}
			for _, p := range tt.pods {
				siblings[p.Spec.NodeName]++
			}
			got := PodsToDelete(tt.pods, 1, siblings)
			if got[0].Metadata.Name != tt.first {
				t.Errorf("deleted %s first, want %s", got[0].Metadata.Name, tt.first)
			}
		})
	}
}

func TestSlowStartBatch(t *testing.T) {
	var calls atomic.Int32
	n, err := SlowStartBatch(10, 1, func() error { calls.Add(1); return nil })
	if n != 10 || err != nil || calls.Load() != 10 {
		t.Errorf("all succeed: %d %v %d", n, err, calls.Load())
	}
	// Batches 1, 2, 4: the third batch fails, the fourth never runs.
	calls.Store(0)
	n, err = SlowStartBatch(10, 1, func() error {
		if calls.Add(1) > 3 {
			return errors.New("quota")
		}
		return nil
	})
	if n != 3 || err == nil || calls.Load() != 7 {
		t.Errorf("failing batch: succeeded %d, err %v, calls %d; want 3, an error, 7", n, err, calls.Load())
	}
}

func TestCalculateStatus(t *testing.T) {
	r := int32(3)
	rs := &v1.ReplicaSet{Metadata: &v1.ObjectMeta{Generation: 4}, Spec: &v1.ReplicaSetSpec{Replicas: &r, MinReadySeconds: 60,
		Template: &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "x"}}}}}
	labelled := func(p *v1.Pod) { p.Metadata.Labels = map[string]string{"app": "x"} }
	deleting := pod("d", "n1", "Running", true, labelled, func(p *v1.Pod) { p.Metadata.DeletionTimestamp = timestamppb.Now() })
	freshReady := pod("f", "n1", "Running", true, labelled, func(p *v1.Pod) { p.Status.Conditions[0].LastTransitionTime = timestamppb.New(now) })
	pods := []*v1.Pod{pod("a", "n1", "Running", true, labelled), freshReady, pod("n", "n1", "Running", false), deleting,
		pod("s", "n1", "Succeeded", false)}
	st := CalculateStatus(rs, pods, nil, now)
	if st.Replicas != 3 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 || st.FullyLabeledReplicas != 2 || st.ObservedGeneration != 4 || st.GetTerminatingReplicas() != 1 {
		t.Errorf("status = %v", st)
	}
}
