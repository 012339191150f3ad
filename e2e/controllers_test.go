package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// apiClient connects to the cluster's apiserver, for checks a CLI can't make.
func (c *cluster) apiClient() *client.Client {
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "KUBELITE_API_PORT="); ok {
			cl, err := client.New("127.0.0.1:" + v)
			if err != nil {
				c.t.Fatal(err)
			}
			c.t.Cleanup(func() { cl.Close() })
			return cl
		}
	}
	c.t.Fatal("no KUBELITE_API_PORT")
	return nil
}

func (c *cluster) applyText(t *testing.T, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	c.kubectl("apply", "-f", f)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func podsWith(t *testing.T, cl *client.Client, sel string) []*v1.Pod {
	pods, _, err := cl.Pods().List(tctx(t), &v1.ListRequest{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

func activeReady(pods []*v1.Pod) (active, ready int) {
	for _, p := range pods {
		if p.Metadata.DeletionTimestamp != nil || p.GetStatus().GetPhase() == "Succeeded" || p.GetStatus().GetPhase() == "Failed" {
			continue
		}
		active++
		for _, c := range p.GetStatus().GetConditions() {
			if c.Type == "Ready" && c.Status == "True" {
				ready++
			}
		}
	}
	return active, ready
}

// checkEveryEvent watches the pods of sel and calls check with all of them
// after every event; it returns a stop function that ends the watch and
// returns every problem check reported.
func checkEveryEvent(t *testing.T, cl *client.Client, sel string, check func(pods []*v1.Pod) string) func() []string {
	w, err := cl.Pods().Watch(tctx(t), &v1.WatchRequest{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		pods := map[string]*v1.Pod{}
		for {
			typ, p, err := w.Recv()
			if err != nil {
				return
			}
			if typ == "DELETED" {
				delete(pods, p.Metadata.Name)
			} else {
				pods[p.Metadata.Name] = p
			}
			list := make([]*v1.Pod, 0, len(pods))
			for _, x := range pods {
				list = append(list, x)
			}
			if msg := check(list); msg != "" && len(problems) < 20 {
				problems = append(problems, msg)
			}
		}
	}()
	return func() []string {
		w.Stop()
		<-done
		return problems
	}
}

func deploymentManifest(name string, replicas int, strategy, extra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  strategy: %[3]s
%[4]s
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: server
        command: [kubelite-app, --serve, "127.0.0.1:0", --ready-after, 500ms]
        env: [{name: VERSION, value: "1"}]
        readinessProbe:
          exec: {command: [kubelite-app, --check, /ready]}
          periodSeconds: 1
          timeoutSeconds: 5
          failureThreshold: 10
`, name, replicas, strategy, extra)
}

func TestReplicaSetReplacesAndScales(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, command: [kubelite-app]}]
`)
	running := func(n int) func() bool {
		return func() bool {
			pods := podsWith(t, cl, "app=rs")
			a, r := activeReady(pods)
			return a == n && r == n
		}
	}
	waitFor(t, "3 pods ready", running(3))
	victim := podsWith(t, cl, "app=rs")[0]
	zero := int64(0)
	if _, err := cl.Pods().Delete(tctx(t), "default", victim.Metadata.Name, &v1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a replacement", func() bool {
		pods := podsWith(t, cl, "app=rs")
		a, r := activeReady(pods)
		for _, p := range pods {
			if p.Metadata.Uid == victim.Metadata.Uid {
				return false
			}
		}
		return a == 3 && r == 3
	})
	c.kubectl("scale", "rs/rs", "--replicas=5")
	waitFor(t, "5 pods", running(5))
	c.kubectl("scale", "replicaset", "rs", "--replicas=1")
	waitFor(t, "1 pod", func() bool { return len(podsWith(t, cl, "app=rs")) == 1 && running(1)() })
	out := c.kubectl("get", "rs", "rs")
	if !strings.Contains(out, "rs     1         1         1") {
		t.Errorf("get rs:\n%s", out)
	}
	events := c.kubectl("describe", "rs", "rs")
	if !strings.Contains(events, "SuccessfulCreate") || !strings.Contains(events, "SuccessfulDelete") {
		t.Errorf("describe rs lacks SuccessfulCreate/SuccessfulDelete events:\n%s", events)
	}
}

func TestRollingUpdateStaysWithinSurgeAndUnavailable(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, deploymentManifest("roll", 6, "{type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: 1}}", ""))
	c.must("bin/kubectl-lite", "rollout", "status", "deployment/roll", "--timeout", "2m")
	// Check the bounds at every pod event during the update.
	stop := checkEveryEvent(t, cl, "app=roll", func(pods []*v1.Pod) string {
		a, r := activeReady(pods)
		switch {
		case a > 8:
			return fmt.Sprintf("%d active pods > replicas+maxSurge 8", a)
		case r < 5 && len(pods) >= 6:
			return fmt.Sprintf("%d ready pods < replicas-maxUnavailable 5", r)
		}
		return ""
	})
	c.kubectl("set", "env", "deployment/roll", "VERSION=2")
	out := c.must("bin/kubectl-lite", "rollout", "status", "deployment/roll", "--timeout", "2m")
	if !strings.Contains(out, `deployment "roll" successfully rolled out`) {
		t.Errorf("rollout status:\n%s", out)
	}
	for _, v := range stop() {
		t.Error(v)
	}
	d, _ := cl.Deployments().Get(tctx(t), "default", "roll")
	if d.Status.UpdatedReplicas != 6 || d.Status.AvailableReplicas != 6 || d.Metadata.Annotations["deployment.kubernetes.io/revision"] != "2" {
		t.Errorf("after the rollout: %v, revision %s", d.Status, d.Metadata.Annotations["deployment.kubernetes.io/revision"])
	}

	// Rollback restores the previous template as a new revision.
	c.kubectl("rollout", "undo", "deployment/roll")
	c.must("bin/kubectl-lite", "rollout", "status", "deployment/roll", "--timeout", "2m")
	d, _ = cl.Deployments().Get(tctx(t), "default", "roll")
	if v := d.Spec.Template.Spec.Containers[0].Env[0].Value; v != "1" || d.Metadata.Annotations["deployment.kubernetes.io/revision"] != "3" {
		t.Errorf("after undo: VERSION=%s revision %s", v, d.Metadata.Annotations["deployment.kubernetes.io/revision"])
	}
	hist := c.kubectl("rollout", "history", "deployment/roll")
	if !strings.Contains(hist, "2 ") || !strings.Contains(hist, "3 ") {
		t.Errorf("history:\n%s", hist)
	}
	// A revision that does not exist: an error, nothing changed.
	out, code := c.run("bin/kubectl-lite", "rollout", "undo", "deployment/roll", "--to-revision=42")
	if code != 1 || !strings.Contains(out, "unable to find specified revision 42") {
		t.Errorf("undo to a missing revision: exit %d\n%s", code, out)
	}
}

func TestRecreateStopsOldPodsFirst(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, deploymentManifest("recreate", 3, "{type: Recreate}", ""))
	c.must("bin/kubectl-lite", "rollout", "status", "deployment/recreate", "--timeout", "2m")
	oldHash := podsWith(t, cl, "app=recreate")[0].Metadata.Labels["pod-template-hash"]
	stop := checkEveryEvent(t, cl, "app=recreate", func(pods []*v1.Pod) string {
		old, fresh := 0, 0
		for _, x := range pods {
			if x.Metadata.Labels["pod-template-hash"] == oldHash {
				old++
			} else {
				fresh++
			}
		}
		if old > 0 && fresh > 0 {
			return fmt.Sprintf("%d new pods exist while %d old pods are not gone", fresh, old)
		}
		return ""
	})
	c.kubectl("set", "env", "deployment/recreate", "VERSION=2")
	c.must("bin/kubectl-lite", "rollout", "status", "deployment/recreate", "--timeout", "2m")
	for _, b := range stop() {
		t.Error(b)
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	c := startCluster(t)
	c.applyText(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 2
  progressDeadlineSeconds: 3
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        command: [kubelite-app]
        readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
`)
	out, code := c.run("bin/kubectl-lite", "rollout", "status", "deployment/stuck", "--timeout", "60s")
	if code != 1 || !strings.Contains(out, `deployment "stuck" exceeded its progress deadline`) {
		t.Errorf("rollout status: exit %d\n%s", code, out)
	}
	out = c.kubectl("get", "deployment", "stuck", "-o", "yaml")
	if !strings.Contains(out, "reason: ProgressDeadlineExceeded") {
		t.Errorf("no ProgressDeadlineExceeded condition:\n%s", out)
	}
}

func TestCascadingDeletion(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	for _, name := range []string{"bg", "fg", "orphan"} {
		c.applyText(t, deploymentManifest(name, 2, "{type: RollingUpdate}", ""))
	}
	for _, name := range []string{"bg", "fg", "orphan"} {
		c.must("bin/kubectl-lite", "rollout", "status", "deployment/"+name, "--timeout", "2m")
	}
	rsOf := func(app string) []*v1.ReplicaSet {
		rss, _, _ := cl.ReplicaSets().List(tctx(t), &v1.ListRequest{LabelSelector: "app=" + app})
		return rss
	}

	// Background: the Deployment goes at once, the collector takes the rest.
	c.kubectl("delete", "deployment", "bg", "--cascade=background")
	waitFor(t, "bg's ReplicaSets and pods to be collected", func() bool { return len(rsOf("bg")) == 0 && len(podsWith(t, cl, "app=bg")) == 0 })

	// Foreground: the Deployment stays, with the finalizer, until its pods are gone.
	c.kubectl("delete", "deployment", "fg", "--cascade=foreground", "--wait=false")
	d, err := cl.Deployments().Get(tctx(t), "default", "fg")
	if err == nil {
		hasFinalizer := false
		for _, f := range d.Metadata.Finalizers {
			hasFinalizer = hasFinalizer || f == api.FinalizerForeground
		}
		if d.Metadata.DeletionTimestamp == nil || !hasFinalizer {
			t.Errorf("foreground: deletionTimestamp %v finalizers %v", d.Metadata.DeletionTimestamp, d.Metadata.Finalizers)
		}
	}
	waitFor(t, "fg to be gone after its dependents", func() bool {
		_, err := cl.Deployments().Get(tctx(t), "default", "fg")
		return client.IsNotFound(err) && len(rsOf("fg")) == 0 && len(podsWith(t, cl, "app=fg")) == 0
	})

	// Orphan: the ReplicaSet and its pods stay, without an owner.
	c.kubectl("delete", "deployment", "orphan", "--cascade=orphan")
	waitFor(t, "the orphan Deployment to be gone", func() bool {
		_, err := cl.Deployments().Get(tctx(t), "default", "orphan")
		return client.IsNotFound(err)
	})
	rss := rsOf("orphan")
	if len(rss) != 1 || len(rss[0].Metadata.OwnerReferences) != 0 {
		t.Fatalf("orphaned ReplicaSets: %v", rss)
	}
	time.Sleep(time.Second) // the collector must leave them alone (not a wait for a result)
	pods := podsWith(t, cl, "app=orphan")
	if a, _ := activeReady(pods); a != 2 {
		t.Errorf("orphaned ReplicaSet's pods: %d active, want 2", a)
	}
	for _, p := range pods {
		if ref := p.Metadata.OwnerReferences; len(ref) != 1 || ref[0].Uid != rss[0].Metadata.Uid {
			t.Errorf("pod %s owners %v, want only its ReplicaSet", p.Metadata.Name, ref)
		}
	}
}

func TestDeploymentBadInput(t *testing.T) {
	c := startCluster(t)
	bad := deploymentManifest("bad", 2, "{type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}", "")
	f := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(f, []byte(bad), 0o644)
	out, code := c.run("bin/kubectl-lite", "apply", "-f", f)
	if code != 1 || !strings.Contains(out, "spec.strategy.rollingUpdate.maxUnavailable") {
		t.Errorf("maxSurge=maxUnavailable=0: exit %d\n%s", code, out)
	}
	neg := strings.Replace(deploymentManifest("neg", 2, "{type: RollingUpdate}", ""), "replicas: 2", "replicas: -1", 1)
	os.WriteFile(f, []byte(neg), 0o644)
	out, code = c.run("bin/kubectl-lite", "apply", "-f", f)
	if code != 1 || !strings.Contains(out, "spec.replicas") {
		t.Errorf("negative replicas: exit %d\n%s", code, out)
	}
	sel := strings.Replace(deploymentManifest("sel", 2, "{type: RollingUpdate}", ""), "selector: {matchLabels: {app: sel}}", "selector: {matchLabels: {app: other}}", 1)
	os.WriteFile(f, []byte(sel), 0o644)
	out, code = c.run("bin/kubectl-lite", "apply", "-f", f)
	if code != 1 || !strings.Contains(out, "`selector` does not match template `labels`") {
		t.Errorf("selector mismatch: exit %d\n%s", code, out)
	}
	if out := c.kubectl("get", "deployments"); strings.Contains(out, "bad") || strings.Contains(out, "neg") {
		t.Errorf("a rejected Deployment was stored:\n%s", out)
	}
}
