package framework

import (
	"math"
	"testing"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func node(name, cpu, mem string, mods ...func(*v1.Node)) *NodeInfo {
	n := &v1.Node{Metadata: &v1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Spec: &v1.NodeSpec{},
		Status: &v1.NodeStatus{Allocatable: map[string]string{"cpu": cpu, "memory": mem, "pods": "110"},
			Conditions: []*v1.NodeCondition{{Type: "Ready", Status: "True"}}}}
	for _, m := range mods {
		m(n)
	}
	a, err := ParseAllocatable(n)
	if err != nil {
		panic(err)
	}
	return &NodeInfo{Node: n, Allocatable: a}
}

func pod(cpu, mem string, mods ...func(*v1.Pod)) *PodInfo {
	req := map[string]string{}
	if cpu != "" {
		req["cpu"] = cpu
	}
	if mem != "" {
		req["memory"] = mem
	}
	p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: &v1.PodSpec{
		Containers: []*v1.Container{{Name: "c", Command: []string{"x"}, Resources: &v1.ResourceRequirements{Requests: req}}}}}
	for _, m := range mods {
		m(p)
	}
	return NewPodInfo(p)
}

func TestFilters(t *testing.T) {
	tests := []struct {
		name string
		pod  *PodInfo
		node *NodeInfo
		want string // "" = fits
	}{
		{"fits", pod("500m", "1Gi"), node("n", "2", "4Gi"), ""},
		{"cordoned", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) { n.Spec.Unschedulable = true }), ReasonUnschedulable},
		{"cordoned but tolerated", pod("", "", func(p *v1.Pod) {
			p.Spec.Tolerations = []*v1.Toleration{{Key: "node.kubernetes.io/unschedulable", Operator: "Exists", Effect: "NoSchedule"}}
		}), node("n", "2", "4Gi", func(n *v1.Node) { n.Spec.Unschedulable = true }), ""},
		{"not ready", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) { n.Status.Conditions[0].Status = "Unknown" }), ReasonNotReady},
		{"no Ready condition", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) { n.Status.Conditions = nil }), ReasonNotReady},
		{"nodeSelector mismatch", pod("", "", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), node("n", "2", "4Gi"), ReasonAffinity},
		{"nodeSelector match", pod("", "", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }),
			node("n", "2", "4Gi", func(n *v1.Node) { n.Metadata.Labels["disk"] = "ssd" }), ""},
		{"required affinity In", pod("", "", func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []*v1.NodeSelectorTerm{{MatchExpressions: []*v1.LabelSelectorRequirement{{Key: "zone", Operator: "In", Values: []string{"a", "b"}}}}}}}}
		}), node("n", "2", "4Gi", func(n *v1.Node) { n.Metadata.Labels["zone"] = "c" }), ReasonAffinity},
		{"NoSchedule taint", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) {
			n.Spec.Taints = []*v1.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}}
		}), "node(s) had untolerated taint {dedicated: gpu}"},
		{"tolerated taint", pod("", "", func(p *v1.Pod) {
			p.Spec.Tolerations = []*v1.Toleration{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}}
		}),
			node("n", "2", "4Gi", func(n *v1.Node) { n.Spec.Taints = []*v1.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}} }), ""},
		{"PreferNoSchedule is not a filter", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) {
			n.Spec.Taints = []*v1.Taint{{Key: "x", Effect: "PreferNoSchedule"}}
		}), ""},
		{"NoExecute taint", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) {
			n.Spec.Taints = []*v1.Taint{{Key: "node.kubernetes.io/unreachable", Effect: "NoExecute"}}
		}), "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"},
		{"insufficient cpu", pod("3", ""), node("n", "2", "4Gi"), "Insufficient cpu"},
		{"insufficient memory", pod("", "5Gi"), node("n", "2", "4Gi"), "Insufficient memory"},
		{"requests already placed count", pod("1500m", ""), func() *NodeInfo {
			n := node("n", "2", "4Gi")
			n.AddPod(pod("1", ""))
			return n
		}(), "Insufficient cpu"},
		{"too many pods", pod("", ""), node("n", "2", "4Gi", func(n *v1.Node) { n.Status.Allocatable["pods"] = "0" }), ReasonTooManyPods},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RunFilters(tt.pod, tt.node)
			if tt.want == "" && len(got) > 0 {
				t.Fatalf("rejected: %v", got)
			}
			if tt.want != "" && (len(got) == 0 || got[0] != tt.want) {
				t.Fatalf("reasons = %v, want %q", got, tt.want)
			}
		})
	}
}

func TestScores(t *testing.T) {
	empty := node("a", "4", "8Gi")
	busy := node("b", "4", "8Gi")
	busy.AddPod(pod("3", "6Gi"))
	p := pod("500m", "1Gi")
	if LeastAllocated(p, empty) <= LeastAllocated(p, busy) {
		t.Errorf("LeastAllocated prefers the busy node: %d vs %d", LeastAllocated(p, empty), LeastAllocated(p, busy))
	}
	// cpu-heavy node: a memory-heavy pod balances it.
	cpuHeavy := node("c", "4", "8Gi")
	cpuHeavy.AddPod(pod("3", "1Gi"))
	memPod, cpuPod := pod("100m", "4Gi"), pod("800m", "100Mi")
	if BalancedAllocation(memPod, cpuHeavy) <= BalancedAllocation(cpuPod, cpuHeavy) {
		t.Errorf("BalancedAllocation: memory pod %d, cpu pod %d on a cpu-heavy node", BalancedAllocation(memPod, cpuHeavy), BalancedAllocation(cpuPod, cpuHeavy))
	}
	if s := Score(p, empty); s <= 0 || s > 2*MaxScore {
		t.Errorf("Score = %d, out of range", s)
	}
	// Pods without requests still spread: defaults count for scoring.
	one := node("d", "4", "8Gi")
	one.AddPod(pod("", ""))
	if LeastAllocated(pod("", ""), empty) <= LeastAllocated(pod("", ""), one) {
		t.Error("an empty pod on a node does not lower its score")
	}
}

func TestFailureMessage(t *testing.T) {
	got := FailureMessage(3, map[string]int{"Insufficient cpu": 2, ReasonUnschedulable: 1})
	want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got := FailureMessage(0, nil); got != "0/0 nodes are available." {
		t.Errorf("no nodes: %q", got)
	}
}

func TestParseAllocatableRejectsMalformed(t *testing.T) {
	n := &v1.Node{Metadata: &v1.ObjectMeta{Name: "bad"}, Status: &v1.NodeStatus{Allocatable: map[string]string{"cpu": "lots", "memory": "1Gi", "pods": "10"}}}
	if _, err := ParseAllocatable(n); err == nil {
		t.Error("malformed cpu accepted")
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for _, tt := range []struct{ nodes, want int }{{50, 50}, {100, 100}, {1000, 420}, {5000, 500}, {6000, 300}} {
		if got := NumFeasibleNodesToFind(tt.nodes); got != tt.want {
			t.Errorf("%d nodes: %d, want %d", tt.nodes, got, tt.want)
		}
	}
}

// Two pods pinned to a node (spec.nodeName skips the fit) each request
// 5e15 cpu, which validation allows; their sum is past MaxInt64 milli-cpu.
// The node must count as full, not as having a negative sum and room.
func TestPinnedHugeRequestsDoNotWrap(t *testing.T) {
	n := node("n", "4", "8Gi")
	big := pod("5e15", "")
	n.AddPod(big)
	n.AddPod(big)
	if n.Requested.MilliCPU != math.MaxInt64 {
		t.Fatalf("requested cpu = %d, want saturated at MaxInt64", n.Requested.MilliCPU)
	}
	small := pod("100m", "")
	if got := RunFilters(small, n); len(got) != 1 || got[0] != "Insufficient cpu" {
		t.Fatalf("a normal pod on a node with 2x5e15 cpu pinned: reasons %v, want [Insufficient cpu]", got)
	}
	if s := Score(small, n); s < 0 || s > 2*MaxScore {
		t.Fatalf("score %d out of range", s)
	}
	// Removing one gives the exact remainder back, not MaxInt64 - 5e18.
	n.RemovePod(big)
	if want := big.Requests.MilliCPU; n.Requested.MilliCPU != want {
		t.Fatalf("after removing one: requested cpu = %d, want %d", n.Requested.MilliCPU, want)
	}
	n.RemovePod(big)
	if n.Requested.MilliCPU != 0 || len(RunFilters(small, n)) != 0 {
		t.Fatalf("after removing both: requested %d, reasons %v", n.Requested.MilliCPU, RunFilters(small, n))
	}
	// One pod summing two such containers saturates too.
	two := pod("5e15", "", func(p *v1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) })
	if two.Requests.MilliCPU != math.MaxInt64 {
		t.Fatalf("pod requests = %d, want MaxInt64", two.Requests.MilliCPU)
	}
}

func TestLeastScoreHugeCapacity(t *testing.T) {
	for _, tc := range []struct{ req, capacity, want int64 }{
		{0, math.MaxInt64, 100},
		{math.MaxInt64 / 2, math.MaxInt64, 50},
		{math.MaxInt64, math.MaxInt64, 0},
		{1, 4, 75},
		{5, 4, 0},
	} {
		if got := leastScore(tc.req, tc.capacity); got != tc.want {
			t.Errorf("leastScore(%d, %d) = %d, want %d", tc.req, tc.capacity, got, tc.want)
		}
	}
}
