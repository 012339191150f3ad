package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// startClusterWith starts a cluster with extra environment for up.sh.
func startClusterWith(t *testing.T, extra ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, state: filepath.Join(dir, "state")}
	c.env = append(os.Environ(),
		"KUBELITE_STATE="+c.state, "KUBELITE_CONFIG="+filepath.Join(dir, "config"),
		"KUBELITE_API_PORT="+strconv.Itoa(freePort(t)), "KUBELITE_ETCD_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_ETCD_PEER_PORT="+strconv.Itoa(freePort(t)), "KUBELITE_METRICS_PORT="+strconv.Itoa(freePort(t)),
		"KUBELITE_SERVER=", "ETCDCTL_ENDPOINTS=")
	c.env = append(c.env, extra...)
	if out, code := c.run("scripts/up.sh"); code != 0 {
		t.Fatalf("up.sh (%d):\n%s", code, out)
	}
	t.Cleanup(c.down)
	return c
}

func (c *cluster) pidOf(name string) int {
	b, err := os.ReadFile(filepath.Join(c.state, "pids", name+".pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	return pidInFile(b)
}

// fastNodeFailure makes a silent node Unknown after 3 s and evicts after 5 s more.
var fastNodeFailure = []string{
	"CONTROLLER_MANAGER_FLAGS=--node-monitor-period=500ms --node-monitor-grace-period=3s --default-unreachable-toleration=5s",
	"KUBELET_FLAGS=--lease-renew-interval=500ms --node-status-update-frequency=1s",
}

func TestStoppedKubeletTurnsNodeAndPodsUnknownAndBack(t *testing.T) {
	c := startClusterWith(t, fastNodeFailure...)
	cl := c.apiClient()
	c.applyText(t, `apiVersion: v1
kind: Pod
metadata: {name: lonely}
spec:
  nodeName: node-1
  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}]
  containers: [{name: c, command: [kubelite-app]}]
`)
	waitFor(t, "lonely to run", func() bool {
		p, err := cl.Pods().Get(tctx(t), "default", "lonely")
		return err == nil && p.GetStatus().GetPhase() == "Running"
	})
	kpid := c.pidOf("kubelet-node-1")
	if err := syscall.Kill(kpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(kpid, syscall.SIGCONT)
		}
	})
	waitFor(t, "node-1 Unknown and lonely Unknown", func() bool {
		n, err := cl.Nodes().Get(tctx(t), "", "node-1")
		if err != nil {
			return false
		}
		unknown := false
		for _, cnd := range n.GetStatus().GetConditions() {
			unknown = unknown || (cnd.Type == "Ready" && cnd.Status == "Unknown")
		}
		p, err := cl.Pods().Get(tctx(t), "default", "lonely")
		return unknown && err == nil && p.GetStatus().GetPhase() == "Unknown"
	})
	if out := c.kubectl("get", "nodes"); !strings.Contains(out, "node-1   Unknown") {
		t.Errorf("get nodes:\n%s", out)
	}
	_ = syscall.Kill(kpid, syscall.SIGCONT)
	stopped = false
	waitFor(t, "node-1 Ready and lonely Running again", func() bool {
		n, err := cl.Nodes().Get(tctx(t), "", "node-1")
		if err != nil {
			return false
		}
		ready := false
		for _, cnd := range n.GetStatus().GetConditions() {
			ready = ready || (cnd.Type == "Ready" && cnd.Status == "True")
		}
		tainted := false
		for _, tn := range n.GetSpec().GetTaints() {
			tainted = tainted || tn.Key == "node.kubernetes.io/unreachable"
		}
		p, err := cl.Pods().Get(tctx(t), "default", "lonely")
		return ready && !tainted && err == nil && p.GetStatus().GetPhase() == "Running" && p.Status.ContainerStatuses[0].Ready
	})
}

func TestEvictionReplacesPodsOnAnotherNode(t *testing.T) {
	c := startClusterWith(t, fastNodeFailure...)
	cl := c.apiClient()
	c.applyText(t, deploymentManifest("evict", 4, "{type: RollingUpdate}", ""))
	c.must("bin/kubectl-lite", "rollout", "status", "deployment/evict", "--timeout", "2m")
	onNode1 := func() []*v1.Pod {
		var out []*v1.Pod
		for _, p := range podsWith(t, cl, "app=evict") {
			if p.Spec.NodeName == "node-1" && p.Metadata.DeletionTimestamp == nil {
				out = append(out, p)
			}
		}
		return out
	}
	if len(onNode1()) == 0 {
		t.Skip("the scheduler put no pod on node-1")
	}
	victims := onNode1()
	kpid := c.pidOf("kubelet-node-1")
	if err := syscall.Kill(kpid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(kpid, syscall.SIGCONT)
		}
	})
	start := time.Now()
	waitFor(t, "4 ready pods on node-2", func() bool {
		n := 0
		for _, p := range podsWith(t, cl, "app=evict") {
			if p.Spec.NodeName == "node-2" && p.Metadata.DeletionTimestamp == nil {
				for _, cnd := range p.GetStatus().GetConditions() {
					if cnd.Type == "Ready" && cnd.Status == "True" {
						n++
					}
				}
			}
		}
		return n == 4
	})
	t.Logf("replaced %d pods %v after the kubelet stopped (grace 3s + toleration 5s)", len(victims), time.Since(start).Round(100*time.Millisecond))
	// The evicted pods wait, Terminating, for their kubelet; when it comes
	// back it stops them and they go.
	_ = syscall.Kill(kpid, syscall.SIGCONT)
	stopped = false
	waitFor(t, "the evicted pods to be stopped and gone", func() bool {
		for _, p := range podsWith(t, cl, "app=evict") {
			for _, v := range victims {
				if p.Metadata.Uid == v.Metadata.Uid {
					return false
				}
			}
		}
		return true
	})
}
