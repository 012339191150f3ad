package deployment

import (
	"testing"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func dep(replicas int32, surge, unavail string) *v1.Deployment {
	return &v1.Deployment{Spec: &v1.DeploymentSpec{Replicas: &replicas, Strategy: &v1.DeploymentStrategy{Type: "RollingUpdate",
		RollingUpdate: &v1.RollingUpdateDeployment{MaxSurge: surge, MaxUnavailable: unavail}}}}
}

func rs(replicas, available int32) *v1.ReplicaSet {
	return &v1.ReplicaSet{Spec: &v1.ReplicaSetSpec{Replicas: &replicas}, Status: &v1.ReplicaSetStatus{AvailableReplicas: available}}
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		replicas            int32
		surge, unavail      string
		wantSurge, wantUnav int32
	}{
		{10, "25%", "25%", 3, 2}, // surge rounds up, unavailable down
		{4, "25%", "25%", 1, 1},
		{1, "25%", "25%", 1, 0},
		{3, "0", "0%", 0, 1}, // both 0: unavailable becomes 1
		{10, "2", "0", 2, 0},
		{100, "50%", "10%", 50, 10},
	}
	for _, tt := range tests {
		s, u := ResolveFenceposts(dep(tt.replicas, tt.surge, tt.unavail))
		if s != tt.wantSurge || u != tt.wantUnav {
			t.Errorf("%d replicas, surge %s unavailable %s: got %d/%d, want %d/%d", tt.replicas, tt.surge, tt.unavail, s, u, tt.wantSurge, tt.wantUnav)
		}
	}
}

func TestRollingArithmetic(t *testing.T) {
	d := dep(10, "25%", "25%") // surge 3, unavailable 2
	old, newRS := rs(10, 10), rs(0, 0)
	if got := NewRSNewReplicas(d, []*v1.ReplicaSet{old, newRS}, newRS); got != 3 {
		t.Errorf("new RS may grow to %d, want 3 (10 + surge 3 - 10)", got)
	}
	newRS = rs(3, 0)
	if got := MaxScaledDown(d, []*v1.ReplicaSet{old, newRS}, newRS); got != 2 {
		t.Errorf("may scale down %d, want 2 (13 - 8 - 3 unavailable new)", got)
	}
	newRS = rs(3, 3)
	if got := MaxScaledDown(d, []*v1.ReplicaSet{old, newRS}, newRS); got != 5 {
		t.Errorf("may scale down %d, want 5", got)
	}
	full := rs(10, 10)
	if got := NewRSNewReplicas(d, []*v1.ReplicaSet{rs(0, 0), full}, full); got != 10 {
		t.Errorf("a full new RS stays at %d", got)
	}
}

func TestProportionalScale(t *testing.T) {
	tests := []struct {
		sizes []int32
		add   int32
		want  []int32
	}{
		{[]int32{6, 4}, 5, []int32{9, 6}},
		{[]int32{6, 4}, -5, []int32{3, 2}},
		{[]int32{5, 0}, 3, []int32{8, 0}}, // empty ReplicaSets are not scaled up
		{[]int32{1, 1, 1}, 1, []int32{2, 1, 1}},
		{[]int32{0, 0}, 2, []int32{2, 0}},
	}
	for _, tt := range tests {
		got := ProportionalScale(tt.sizes, tt.add)
		var sum, want int32
		for i := range got {
			sum += got[i]
			want += tt.want[i]
			if got[i] != tt.want[i] {
				t.Errorf("scale %v by %d = %v, want %v", tt.sizes, tt.add, got, tt.want)
				break
			}
		}
		_ = sum
	}
}

func TestSumAvailableIgnoresPodsBeyondTheSize(t *testing.T) {
	// An old ReplicaSet just scaled to 2 whose status still says 5 available.
	if got := SumAvailable([]*v1.ReplicaSet{rs(2, 5), rs(3, 1)}); got != 3 {
		t.Errorf("SumAvailable = %d, want 3 (2 of the old, 1 of the new)", got)
	}
}
