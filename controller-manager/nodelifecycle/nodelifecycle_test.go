package nodelifecycle

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func runningStatus() *v1.PodStatus {
	now := timestamppb.Now()
	return &v1.PodStatus{Phase: "Running",
		Conditions: []*v1.PodCondition{
			{Type: "Ready", Status: "True", LastTransitionTime: now},
			{Type: "ContainersReady", Status: "True", LastTransitionTime: now},
		},
		ContainerStatuses: []*v1.ContainerStatus{{Name: "c", Ready: true, State: &v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}}},
	}
}

// setStatus writes a pod's status as its kubelet does (no resourceVersion).
func setStatus(t *testing.T, c *client.Client, p *v1.Pod, st *v1.PodStatus) *v1.Pod {
	t.Helper()
	out, err := c.Pods().UpdateStatus(tctx(t), &v1.Pod{Metadata: &v1.ObjectMeta{Name: p.Metadata.Name, Namespace: p.Metadata.Namespace, Uid: p.Metadata.Uid}, Status: st})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The controller decides from its cache; a pod whose kubelet wrote a
// terminal status after that read keeps it: the controller's write carries
// the resourceVersion it read, conflicts, and the fresh read says Failed.
// A pod that changed but is still running is re-read and marked Unknown.
func TestMarkUnknownNeverOverwritesAStatusWrittenSinceItsRead(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.Options{})
	c := srv.Client
	node, err := c.Nodes().Create(tctx(t), &v1.Node{Metadata: &v1.ObjectMeta{Name: "node-1"}})
	if err != nil {
		t.Fatal(err)
	}
	node.Status = &v1.NodeStatus{Conditions: []*v1.NodeCondition{{Type: "Ready", Status: "True"}}}
	if _, err := c.Nodes().UpdateStatus(tctx(t), node); err != nil {
		t.Fatal(err)
	}
	pods := map[string]*v1.Pod{}
	for _, name := range []string{"finishes", "runs", "stays"} {
		p, err := c.Pods().Create(tctx(t), &v1.Pod{Metadata: &v1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: &v1.PodSpec{NodeName: "node-1", Containers: []*v1.Container{{Name: "c", Command: []string{"sleep", "1"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		pods[name] = setStatus(t, c, p, runningStatus())
	}

	// The controller's informers read everything, then the pod informer
	// stops: its cache is the read, the writes below come after it.
	nodeInf := client.NewInformer(c.Nodes(), nil)
	leaseInf := client.NewInformer(c.Leases(), &v1.ListRequest{Namespace: api.NodeLeaseNamespace})
	podInf := client.NewInformer(c.Pods(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	podCtx, stopPods := context.WithCancel(ctx)
	go nodeInf.Run(ctx)
	go leaseInf.Run(ctx)
	podsStopped := make(chan struct{})
	go func() { podInf.Run(podCtx); close(podsStopped) }()
	for _, synced := range []func(context.Context) bool{nodeInf.WaitForSync, leaseInf.WaitForSync, podInf.WaitForSync} {
		if !synced(tctx(t)) {
			t.Fatal("informers did not sync")
		}
	}
	// Wait for the pod informer to return: a watch event already in
	// flight must not refresh the cache after the writes below.
	stopPods()
	select {
	case <-podsStopped:
	case <-tctx(t).Done():
		t.Fatal("the pod informer did not stop")
	}
	if n := len(podInf.List(nil)); n != 3 {
		t.Fatalf("the pod cache holds %d pods, want 3", n)
	}
	readRV := map[string]string{}
	for name := range pods {
		p, ok := podInf.Get("default/" + name)
		if !ok {
			t.Fatalf("pod %s not in the cache", name)
		}
		readRV[name] = p.Metadata.ResourceVersion
	}
	// cacheIsTheRead fails the test unless the controller still decides
	// from the read made before the kubelets' writes: otherwise the test
	// proves nothing about writing on a stale read.
	cacheIsTheRead := func(when string) {
		t.Helper()
		for name, rv := range readRV {
			if p, _ := podInf.Get("default/" + name); p == nil || p.Metadata.ResourceVersion != rv {
				t.Fatalf("%s: the cached pod %s changed (resourceVersion %q, read %q): the cache is no longer the stale read", when, name, p.GetMetadata().GetResourceVersion(), rv)
			}
		}
	}
	rec := record.New(c, "node-controller", "")
	go rec.Run(ctx)
	nc := New(Config{MonitorPeriod: time.Hour, GracePeriod: time.Second, EvictionTimeout: time.Hour}, c, rec, nodeInf, leaseInf, podInf)

	// Between the controller's read and its write: one kubelet's last word
	// is Failed, another's a new Running status.
	failed := &v1.PodStatus{Phase: "Failed", Reason: "Error", ContainerStatuses: []*v1.ContainerStatus{{Name: "c",
		State: &v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}}
	setStatus(t, c, pods["finishes"], failed)
	again := runningStatus()
	again.ContainerStatuses[0].RestartCount = 1
	setStatus(t, c, pods["runs"], again)
	cacheIsTheRead("after the kubelets' writes")

	n, ok := nodeInf.Get("node-1")
	if !ok {
		t.Fatal("node-1 not in the cache")
	}
	nc.markUnknown(tctx(t), n)
	cacheIsTheRead("after markUnknown")

	get := func(name string) *v1.Pod {
		p, err := c.Pods().Get(tctx(t), "default", name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := get("finishes"); p.Status.Phase != "Failed" || p.Status.Reason != "Error" || p.Status.ContainerStatuses[0].State.GetTerminated().GetExitCode() != 1 {
		t.Errorf("the Failed status the kubelet wrote was overwritten: %v", p.Status)
	}
	for _, name := range []string{"runs", "stays"} {
		p := get(name)
		ready := ""
		for _, cnd := range p.Status.Conditions {
			if cnd.Type == "Ready" {
				ready = cnd.Status + "/" + cnd.Reason
			}
		}
		if p.Status.Phase != "Unknown" || ready != "False/NodeLost" || p.Status.ContainerStatuses[0].Ready {
			t.Errorf("pod %s of the lost node: phase %s, Ready %s, container ready %v; want Unknown, False/NodeLost, false", name, p.Status.Phase, ready, p.Status.ContainerStatuses[0].Ready)
		}
	}
	if got := get("runs").Status.ContainerStatuses[0].RestartCount; got != 1 {
		t.Errorf("the re-read status was not the base of the write: restartCount %d, want 1", got)
	}
}

func TestUnknownPodStatus(t *testing.T) {
	now := timestamppb.Now()
	for _, tc := range []struct {
		name  string
		phase string
		want  bool
	}{
		{"running is marked", "Running", true},
		{"pending is marked", "Pending", true},
		{"succeeded is final", "Succeeded", false},
		{"failed is final", "Failed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := runningStatus()
			st.Phase = tc.phase
			got := unknownPodStatus(&v1.Pod{Status: st}, now)
			if (got != nil) != tc.want {
				t.Fatalf("unknownPodStatus(%s) = %v, want a change: %v", tc.phase, got, tc.want)
			}
			if got != nil && (got.Phase != "Unknown" || st.Phase != tc.phase) {
				t.Errorf("phase %s -> %s (input changed to %s)", tc.phase, got.Phase, st.Phase)
			}
		})
	}
	marked := unknownPodStatus(&v1.Pod{Status: runningStatus()}, now)
	if again := unknownPodStatus(&v1.Pod{Status: marked}, now); again != nil {
		t.Errorf("an already marked pod is written again: %v", again)
	}
}
