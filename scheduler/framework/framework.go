// Package framework holds the scheduler's decisions as pure functions:
// the filters and scores of Kubernetes' default plugins, and the
// "0/3 nodes are available" message. Everything here is table-tested.
package framework

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Resources are amounts of the resources the scheduler fits.
type Resources struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
}

// Add returns r + o, each amount saturating at MaxInt64 (and MinInt64):
// validation bounds one pod, not the sum over a node, so a sum never wraps.
func (r Resources) Add(o Resources) Resources {
	return Resources{MilliCPU: addSat(r.MilliCPU, o.MilliCPU), Memory: addSat(r.Memory, o.Memory), Pods: addSat(r.Pods, o.Pods)}
}

// addSat is a + b clamped to the int64 range.
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// Scoring uses these for a container that requests nothing, as Kubernetes
// does, so that empty pods still spread.
const (
	DefaultMilliCPURequest = 100
	DefaultMemoryRequest   = 200 * 1024 * 1024
)

// PodRequests sums the containers' requests (and counts the pod itself).
// Unparsable quantities count as zero; the apiserver rejects them anyway.
func PodRequests(p *v1.Pod) Resources {
	r := Resources{Pods: 1}
	for _, c := range p.GetSpec().GetContainers() {
		req := c.GetResources().GetRequests()
		if q, err := resource.ParseQuantity(req["cpu"]); err == nil && req["cpu"] != "" {
			r.MilliCPU = addSat(r.MilliCPU, q.MilliValue())
		}
		if q, err := resource.ParseQuantity(req["memory"]); err == nil && req["memory"] != "" {
			r.Memory = addSat(r.Memory, q.Value())
		}
	}
	return r
}

// nonZeroRequests is PodRequests with the scoring defaults per container.
func nonZeroRequests(p *v1.Pod) Resources {
	r := Resources{Pods: 1}
	for _, c := range p.GetSpec().GetContainers() {
		req := c.GetResources().GetRequests()
		cpu, mem := int64(DefaultMilliCPURequest), int64(DefaultMemoryRequest)
		if q, err := resource.ParseQuantity(req["cpu"]); err == nil && req["cpu"] != "" {
			cpu = q.MilliValue()
		}
		if q, err := resource.ParseQuantity(req["memory"]); err == nil && req["memory"] != "" {
			mem = q.Value()
		}
		r.MilliCPU = addSat(r.MilliCPU, cpu)
		r.Memory = addSat(r.Memory, mem)
	}
	return r
}

// PodInfo is a pod with its requests computed once.
type PodInfo struct {
	Pod      *v1.Pod
	Requests Resources // as the fit sees them
	NonZero  Resources // with the scoring defaults
}

// NewPodInfo computes a pod's requests.
func NewPodInfo(p *v1.Pod) *PodInfo {
	return &PodInfo{Pod: p, Requests: PodRequests(p), NonZero: nonZeroRequests(p)}
}

// NodeInfo is a node with what is placed on it.
type NodeInfo struct {
	Node        *v1.Node
	Allocatable Resources
	Requested   Resources // sum of PodRequests of its non-terminal pods, saturated
	NonZero     Resources // the same with scoring defaults

	// The exact sums behind Requested and NonZero, so that removing a pod
	// after the sum saturated gives the true remainder back.
	requested, nonZero wideResources
}

// wide is a 128-bit two's-complement sum of int64s.
type wide struct {
	hi int64
	lo uint64
}

func (w *wide) add(v int64) {
	var c uint64
	w.lo, c = bits.Add64(w.lo, uint64(v), 0)
	w.hi += v>>63 + int64(c)
}

func (w *wide) sub(v int64) {
	var b uint64
	w.lo, b = bits.Sub64(w.lo, uint64(v), 0)
	w.hi -= v>>63 + int64(b)
}

// value is the sum clamped to the int64 range.
func (w wide) value() int64 {
	switch {
	case w.hi == 0 && w.lo <= math.MaxInt64, w.hi == -1 && w.lo > math.MaxInt64:
		return int64(w.lo)
	case w.hi >= 0:
		return math.MaxInt64
	}
	return math.MinInt64
}

type wideResources struct{ cpu, mem, pods wide }

func (w *wideResources) add(r Resources, sign int) Resources {
	for _, f := range []struct {
		w *wide
		v int64
	}{{&w.cpu, r.MilliCPU}, {&w.mem, r.Memory}, {&w.pods, r.Pods}} {
		if sign > 0 {
			f.w.add(f.v)
		} else {
			f.w.sub(f.v)
		}
	}
	return Resources{MilliCPU: w.cpu.value(), Memory: w.mem.value(), Pods: w.pods.value()}
}

// ParseAllocatable reads a node's allocatable; an error names what is wrong.
func ParseAllocatable(n *v1.Node) (Resources, error) {
	a := n.GetStatus().GetAllocatable()
	if len(a) == 0 {
		a = n.GetStatus().GetCapacity()
	}
	var r Resources
	for name, dst := range map[string]*int64{"cpu": &r.MilliCPU, "memory": &r.Memory, "pods": &r.Pods} {
		v, ok := a[name]
		if !ok {
			return r, fmt.Errorf("allocatable %s is missing", name)
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return r, fmt.Errorf("allocatable %s %q: %v", name, v, err)
		}
		if name == "cpu" {
			*dst = q.MilliValue()
		} else {
			*dst = q.Value()
		}
	}
	return r, nil
}

// AddPod accounts a pod on the node.
func (n *NodeInfo) AddPod(p *PodInfo) {
	n.Requested = n.requested.add(p.Requests, +1)
	n.NonZero = n.nonZero.add(p.NonZero, +1)
}

// RemovePod takes a pod's requests off the node.
func (n *NodeInfo) RemovePod(p *PodInfo) {
	n.Requested = n.requested.add(p.Requests, -1)
	n.NonZero = n.nonZero.add(p.NonZero, -1)
}

// Failure reasons, in Kubernetes' words.
const (
	ReasonUnschedulable = "node(s) were unschedulable"
	ReasonNodeName      = "node(s) didn't match the requested node name"
	ReasonAffinity      = "node(s) didn't match Pod's node affinity/selector"
	ReasonNotReady      = "node(s) were not ready"
	ReasonTooManyPods   = "Too many pods"
)

// Filter is one filter plugin: the reasons a node cannot take the pod
// (none: it can).
type Filter func(p *PodInfo, n *NodeInfo) []string

// Filters are the default filters, in Kubernetes' order.
var Filters = []Filter{NodeUnschedulable, NodeName, NodeReady, NodeAffinity, TaintToleration, NodeResourcesFit}

// RunFilters returns every reason the node fails (stopping at the first
// failing plugin, as Kubernetes does).
func RunFilters(p *PodInfo, n *NodeInfo) []string {
	for _, f := range Filters {
		if r := f(p, n); len(r) > 0 {
			return r
		}
	}
	return nil
}

// NodeUnschedulable rejects cordoned nodes unless the pod tolerates the
// node.kubernetes.io/unschedulable taint.
func NodeUnschedulable(pi *PodInfo, n *NodeInfo) []string {
	p := pi.Pod
	if !n.Node.GetSpec().GetUnschedulable() {
		return nil
	}
	t := &v1.Taint{Key: "node.kubernetes.io/unschedulable", Effect: "NoSchedule"}
	if tolerates(p.GetSpec().GetTolerations(), t) {
		return nil
	}
	return []string{ReasonUnschedulable}
}

// NodeName rejects every node but the one a pod names.
func NodeName(pi *PodInfo, n *NodeInfo) []string {
	p := pi.Pod
	if name := p.GetSpec().GetNodeName(); name != "" && name != n.Node.GetMetadata().GetName() {
		return []string{ReasonNodeName}
	}
	return nil
}

// NodeReady rejects nodes whose Ready condition is not True.
func NodeReady(_ *PodInfo, n *NodeInfo) []string {
	for _, c := range n.Node.GetStatus().GetConditions() {
		if c.Type == "Ready" {
			if c.Status == "True" {
				return nil
			}
			break
		}
	}
	return []string{ReasonNotReady}
}

// NodeAffinity applies nodeSelector and required node affinity.
func NodeAffinity(pi *PodInfo, n *NodeInfo) []string {
	p := pi.Pod
	nl := labels.Set(n.Node.GetMetadata().GetLabels())
	if sel := p.GetSpec().GetNodeSelector(); len(sel) > 0 && !labels.SelectorFromSet(sel).Matches(nl) {
		return []string{ReasonAffinity}
	}
	req := p.GetSpec().GetAffinity().GetNodeAffinity().GetRequiredDuringSchedulingIgnoredDuringExecution()
	if req == nil || len(req.NodeSelectorTerms) == 0 {
		return nil
	}
	for _, term := range req.NodeSelectorTerms {
		s, err := api.LabelSelectorAsSelector(&v1.LabelSelector{MatchExpressions: term.MatchExpressions})
		if err == nil && s.Matches(nl) {
			return nil // terms are ORed
		}
	}
	return []string{ReasonAffinity}
}

// tolerates reports whether some toleration matches the taint.
func tolerates(tols []*v1.Toleration, t *v1.Taint) bool {
	for _, tol := range tols {
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case "Exists":
			return true
		case "", "Equal":
			if tol.Key != "" && tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}

// TaintToleration rejects nodes with a NoSchedule or NoExecute taint the
// pod does not tolerate.
func TaintToleration(pi *PodInfo, n *NodeInfo) []string {
	p := pi.Pod
	for _, t := range n.Node.GetSpec().GetTaints() {
		if t.Effect != "NoSchedule" && t.Effect != "NoExecute" {
			continue
		}
		if !tolerates(p.GetSpec().GetTolerations(), t) {
			return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
		}
	}
	return nil
}

// NodeResourcesFit checks the pod's requests against allocatable minus
// what is already requested there. It compares req > alloc - requested,
// which cannot overflow (both are non-negative), where requested + req can.
func NodeResourcesFit(pi *PodInfo, n *NodeInfo) []string {
	req := pi.Requests
	var out []string
	if exceeds(1, n.Allocatable.Pods, n.Requested.Pods) {
		out = append(out, ReasonTooManyPods)
	}
	if req.MilliCPU > 0 && exceeds(req.MilliCPU, n.Allocatable.MilliCPU, n.Requested.MilliCPU) {
		out = append(out, "Insufficient cpu")
	}
	if req.Memory > 0 && exceeds(req.Memory, n.Allocatable.Memory, n.Requested.Memory) {
		out = append(out, "Insufficient memory")
	}
	return out
}

// exceeds reports req > alloc - requested without overflow.
func exceeds(req, alloc, requested int64) bool {
	if requested < 0 {
		requested = 0
	}
	if requested > alloc {
		return true // already over-committed (or alloc shrank)
	}
	return req > alloc-requested // 0 <= alloc-requested when alloc >= requested >= 0
}

// MaxScore is a plugin's best score.
const MaxScore = 100

// LeastAllocated favours nodes with more room left (cpu and memory, equal
// weights), counting the pod itself.
func LeastAllocated(p *PodInfo, n *NodeInfo) int64 {
	req := n.NonZero.Add(p.NonZero)
	cpu := leastScore(req.MilliCPU, n.Allocatable.MilliCPU)
	mem := leastScore(req.Memory, n.Allocatable.Memory)
	return (cpu + mem) / 2
}

func leastScore(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	if requested < 0 {
		requested = 0
	}
	// (capacity-requested)*100 overflows int64 for capacities above
	// MaxInt64/100 (9.2e16 milli-cpu, 92 PB of memory): multiply into 128
	// bits and divide back (the quotient is at most 100, hi < capacity).
	hi, lo := bits.Mul64(uint64(capacity-requested), MaxScore)
	q, _ := bits.Div64(hi, lo, uint64(capacity))
	return int64(q)
}

// BalancedAllocation favours nodes whose cpu and memory would be used in
// equal fractions (Kubernetes: 1 - standard deviation of the fractions).
func BalancedAllocation(p *PodInfo, n *NodeInfo) int64 {
	req := n.NonZero.Add(p.NonZero)
	if n.Allocatable.MilliCPU <= 0 || n.Allocatable.Memory <= 0 {
		return 0
	}
	c := min(float64(req.MilliCPU)/float64(n.Allocatable.MilliCPU), 1)
	m := min(float64(req.Memory)/float64(n.Allocatable.Memory), 1)
	std := abs(c-m) / 2
	return int64((1 - std) * MaxScore)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// Score weights (Kubernetes' defaults: both 1).
const (
	WeightLeastAllocated     = 1
	WeightBalancedAllocation = 1
)

// Score is the weighted sum of the scores.
func Score(p *PodInfo, n *NodeInfo) int64 {
	return WeightLeastAllocated*LeastAllocated(p, n) + WeightBalancedAllocation*BalancedAllocation(p, n)
}

// FailureMessage is Kubernetes' FailedScheduling message:
// "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
func FailureMessage(total int, reasons map[string]int) string {
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", total)
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return msg + "."
}

// NumFeasibleNodesToFind is Kubernetes' percentageOfNodesToScore default:
// all nodes up to 100, then an adaptive percentage (50% minus 1% per 125
// nodes, at least 5%) but never fewer than 100.
func NumFeasibleNodesToFind(numNodes int) int {
	const minFeasible = 100
	if numNodes < minFeasible {
		return numNodes
	}
	pct := 50 - numNodes/125
	if pct < 5 {
		pct = 5
	}
	n := numNodes * pct / 100
	if n < minFeasible {
		return minFeasible
	}
	return n
}
