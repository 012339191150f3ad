package core_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scheduler/core"
)

func ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	time.AfterFunc(30*time.Second, cancel)
	return c
}

func config(api *apiservertest.Server) core.Config {
	return core.Config{APIServer: api.Addr, SchedulerName: "default-scheduler", BackoffInitial: 100 * time.Millisecond,
		BackoffMax: time.Second, MaxUnschedulable: time.Minute, BindWorkers: 16,
		LeaseName: "kube-scheduler", LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}
}

// startScheduler runs a scheduler until the test ends.
func startScheduler(t *testing.T, cfg core.Config) context.CancelFunc {
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- core.Run(c, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("scheduler did not stop")
		}
	})
	return cancel
}

func node(t *testing.T, api *apiservertest.Server, name, cpu string, mods ...func(*v1.Node)) {
	t.Helper()
	n := &v1.Node{Metadata: &v1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}, Spec: &v1.NodeSpec{},
		Status: &v1.NodeStatus{Allocatable: map[string]string{"cpu": cpu, "memory": "16Gi", "pods": "110"},
			Capacity: map[string]string{"cpu": cpu, "memory": "16Gi", "pods": "110"}, Conditions: []*v1.NodeCondition{{Type: "Ready", Status: "True"}}}}
	for _, m := range mods {
		m(n)
	}
	if _, err := api.Client.Nodes().Create(ctx(), n); err != nil {
		t.Fatal(err)
	}
}

func pod(t *testing.T, api *apiservertest.Server, name, cpu string, mods ...func(*v1.Pod)) {
	t.Helper()
	p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"x"},
		Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": cpu}}}}}}
	for _, m := range mods {
		m(p)
	}
	if _, err := api.Client.Pods().Create(ctx(), p); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// placement returns node -> pods bound there, once every pod is bound.
func waitBound(t *testing.T, api *apiservertest.Server, n int) map[string][]*v1.Pod {
	t.Helper()
	var out map[string][]*v1.Pod
	waitFor(t, fmt.Sprintf("%d pods bound", n), func() bool {
		pods, _, err := api.Client.Pods().List(ctx(), nil)
		if err != nil {
			return false
		}
		out = map[string][]*v1.Pod{}
		bound := 0
		for _, p := range pods {
			if nn := p.Spec.NodeName; nn != "" {
				out[nn] = append(out[nn], p)
				bound++
			}
		}
		return bound == n
	})
	return out
}

func nodeOf(t *testing.T, api *apiservertest.Server, name string) string {
	t.Helper()
	var nn string
	waitFor(t, "pod "+name+" bound", func() bool {
		p, err := api.Client.Pods().Get(ctx(), "default", name)
		nn = p.GetSpec().GetNodeName()
		return err == nil && nn != ""
	})
	return nn
}

func TestSpreadsAcrossNodes(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	for _, n := range []string{"n1", "n2", "n3"} {
		node(t, api, n, "4")
	}
	startScheduler(t, config(api))
	for i := 0; i < 6; i++ {
		pod(t, api, fmt.Sprintf("p%d", i), "1")
	}
	placement := waitBound(t, api, 6)
	for _, n := range []string{"n1", "n2", "n3"} {
		if len(placement[n]) != 2 {
			t.Errorf("node %s got %d pods, want 2 (LeastAllocated spreads)", n, len(placement[n]))
		}
	}
	evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "reason=Scheduled,involvedObject.name=p0"})
	waitFor(t, "a Scheduled event", func() bool {
		evs, _, _ = api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "reason=Scheduled,involvedObject.name=p0"})
		return len(evs) == 1
	})
	if !strings.HasPrefix(evs[0].Message, "Successfully assigned default/p0 to n") {
		t.Errorf("Scheduled event: %q", evs[0].Message)
	}
}

func TestPacksByRequests(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	node(t, api, "small", "1")
	node(t, api, "big", "4")
	startScheduler(t, config(api))
	pod(t, api, "large", "3")
	if got := nodeOf(t, api, "large"); got != "big" {
		t.Errorf("a 3-cpu pod went to %s", got)
	}
	pod(t, api, "fits-small", "1")
	pod(t, api, "fills-big", "1")
	placement := waitBound(t, api, 3)
	if len(placement["small"]) != 1 || len(placement["big"]) != 2 {
		t.Errorf("placement: small %d, big %d", len(placement["small"]), len(placement["big"]))
	}
}

func TestNodeSelectorAndTaints(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	node(t, api, "ssd", "4", func(n *v1.Node) { n.Metadata.Labels["disk"] = "ssd" })
	node(t, api, "gpu", "4", func(n *v1.Node) { n.Spec.Taints = []*v1.Taint{{Key: "dedicated", Value: "gpu", Effect: "NoSchedule"}} })
	node(t, api, "plain", "4")
	startScheduler(t, config(api))
	pod(t, api, "wants-ssd", "100m", func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} })
	pod(t, api, "tolerates-gpu", "100m", func(p *v1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "gpu"}
		p.Spec.Tolerations = []*v1.Toleration{{Key: "dedicated", Operator: "Equal", Value: "gpu", Effect: "NoSchedule"}}
	})
	for i := 0; i < 10; i++ {
		pod(t, api, fmt.Sprintf("plain-%d", i), "100m")
	}
	if got := nodeOf(t, api, "wants-ssd"); got != "ssd" {
		t.Errorf("wants-ssd on %s", got)
	}
	if got := nodeOf(t, api, "tolerates-gpu"); got != "gpu" {
		t.Errorf("tolerates-gpu on %s", got)
	}
	placement := waitBound(t, api, 12)
	for _, p := range placement["gpu"] {
		if p.Metadata.Name != "tolerates-gpu" {
			t.Errorf("%s landed on the tainted node", p.Metadata.Name)
		}
	}
}

func TestUnschedulableIsExplainedThenScheduledWhenANodeArrives(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	node(t, api, "n1", "2")
	node(t, api, "n2", "2")
	node(t, api, "cordoned", "8", func(n *v1.Node) { n.Spec.Unschedulable = true })
	startScheduler(t, config(api))
	pod(t, api, "huge", "4")
	want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
	waitFor(t, "PodScheduled=False", func() bool {
		p, err := api.Client.Pods().Get(ctx(), "default", "huge")
		if err != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "PodScheduled" && c.Status == "False" && c.Reason == "Unschedulable" {
				if c.Message != want {
					t.Fatalf("message %q, want %q", c.Message, want)
				}
				return true
			}
		}
		return false
	})
	waitFor(t, "a FailedScheduling event", func() bool {
		evs, _, _ := api.Client.Events().List(ctx(), &v1.ListRequest{FieldSelector: "reason=FailedScheduling,involvedObject.name=huge"})
		return len(evs) > 0 && evs[0].Message == want && evs[0].Type == "Warning"
	})
	node(t, api, "n3", "8")
	if got := nodeOf(t, api, "huge"); got != "n3" {
		t.Errorf("huge went to %s", got)
	}
}

func TestNoOvercommitUnderARace(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	// 10 nodes x 2 cpu = exactly 200 slots of 100m.
	for i := 0; i < 10; i++ {
		node(t, api, fmt.Sprintf("n%d", i), "2")
	}
	startScheduler(t, config(api))
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 200; i += 8 {
				pod(t, api, fmt.Sprintf("p%d", i), "100m")
			}
		}()
	}
	wg.Wait()
	placement := waitBound(t, api, 200)
	for n, pods := range placement {
		var total int64
		for _, p := range pods {
			q := resource.MustParse(p.Spec.Containers[0].Resources.Requests["cpu"])
			total += q.MilliValue()
		}
		if total > 2000 {
			t.Errorf("node %s over-committed: %dm of 2000m", n, total)
		}
	}
	pod(t, api, "one-too-many", "100m")
	waitFor(t, "the 201st pod to be Unschedulable", func() bool {
		p, _ := api.Client.Pods().Get(ctx(), "default", "one-too-many")
		for _, c := range p.GetStatus().GetConditions() {
			if c.Type == "PodScheduled" && c.Reason == "Unschedulable" {
				return strings.Contains(c.Message, "10 Insufficient cpu")
			}
		}
		return false
	})
}

func TestLeaderFailover(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	node(t, api, "n1", "8")
	cfgA, cfgB := config(api), config(api)
	cfgA.LeaderElect, cfgA.Identity = true, "sched-a"
	cfgB.LeaderElect, cfgB.Identity = true, "sched-b"
	stopA := startScheduler(t, cfgA)
	waitFor(t, "sched-a to lead", func() bool {
		l, err := api.Client.Leases().Get(ctx(), "kube-system", "kube-scheduler")
		return err == nil && l.Spec.GetHolderIdentity() == "sched-a"
	})
	startScheduler(t, cfgB)
	pod(t, api, "first", "100m")
	nodeOf(t, api, "first")
	stopA()
	waitFor(t, "sched-b to take over", func() bool {
		l, err := api.Client.Leases().Get(ctx(), "kube-system", "kube-scheduler")
		return err == nil && l.Spec.GetHolderIdentity() == "sched-b"
	})
	pod(t, api, "second", "100m")
	nodeOf(t, api, "second")
}

func TestNodeWithMalformedCapacityIsSkipped(t *testing.T) {
	api := apiservertest.Start(t, apiservertest.Options{})
	node(t, api, "broken", "8", func(n *v1.Node) {
		delete(n.Status.Allocatable, "memory")
		delete(n.Status.Capacity, "memory")
	})
	startScheduler(t, config(api))
	pod(t, api, "p", "1")
	waitFor(t, "the explanation", func() bool {
		p, _ := api.Client.Pods().Get(ctx(), "default", "p")
		for _, c := range p.GetStatus().GetConditions() {
			if c.Type == "PodScheduled" && c.Reason == "Unschedulable" {
				return c.Message == "0/1 nodes are available: 1 node(s) had malformed capacity."
			}
		}
		return false
	})
	node(t, api, "good", "8")
	if got := nodeOf(t, api, "p"); got != "good" {
		t.Errorf("p on %s", got)
	}
}
