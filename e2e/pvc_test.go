package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// claimSet is a Parallel StatefulSet whose pods append to their claim
// every 100ms; extra goes under spec.
func claimSet(name string, replicas int, extra, onTerm string, grace int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: %[1]s}}
  volumeClaimTemplates: [{metadata: {name: data, labels: {tier: storage}}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]
%[3]s
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: %[5]d
      containers:
      - name: c
        command: [kubelite-app, --append, "$(VOLUME_DATA)/log", --every, 100ms, --on-term, %[4]s]
        volumeMounts: [{name: data, mountPath: /data}]
`, name, replicas, extra, onTerm, grace)
}

func (c *cluster) claimDir(name string) string {
	return filepath.Join(c.state, "volumes", "default", name)
}

func claimOf(t *testing.T, cl *client.Client, name string) (*v1.PersistentVolumeClaim, bool) {
	got, err := cl.PersistentVolumeClaims().Get(tctx(t), "default", name)
	if client.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return got, true
}

func waitBound(t *testing.T, c *cluster, cl *client.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		waitFor(t, n+" bound and written", func() bool {
			got, ok := claimOf(t, cl, n)
			b, _ := os.ReadFile(filepath.Join(c.claimDir(n), "log"))
			return ok && got.GetStatus().GetPhase() == "Bound" && len(b) > 0
		})
	}
}

func waitClaimGone(t *testing.T, c *cluster, cl *client.Client, name string) {
	t.Helper()
	waitFor(t, name+" gone from the API and the disk", func() bool {
		_, ok := claimOf(t, cl, name)
		_, err := os.Stat(c.claimDir(name))
		return !ok && os.IsNotExist(err)
	})
}

func ownerKinds(c *v1.PersistentVolumeClaim) string {
	var out []string
	for _, r := range c.GetMetadata().GetOwnerReferences() {
		out = append(out, fmt.Sprintf("%s/%s controller=%v", r.Kind, r.Name, r.GetController()))
	}
	return strings.Join(out, ",")
}

func TestStatefulSetClaimRetentionThroughOwners(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	deleteWhole := "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}"
	c.applyText(t, claimSet("web", 2, deleteWhole, "exit", 1))
	c.applyText(t, claimSet("web-db", 2, deleteWhole, "exit", 1))
	waitBound(t, c, cl, "data-web-0", "data-web-1", "data-web-db-0", "data-web-db-1")

	// The claims are API objects: kubectl-lite and etcd show them, with the set as owner.
	table := c.kubectl("get", "pvc")
	for _, want := range []string{"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE", "data-web-db-1", "Bound", "1Gi", "RWO"} {
		if !strings.Contains(table, want) {
			t.Errorf("get pvc lacks %q:\n%s", want, table)
		}
	}
	y := c.kubectl("get", "pvc", "data-web-0", "-o", "yaml")
	for _, want := range []string{"kind: PersistentVolumeClaim", "ownerReferences:", "kind: StatefulSet", "name: web\n", "controller: true", "kubernetes.io/pvc-protection", "kubelite.io/claim-folder", "volume.kubernetes.io/selected-node", "phase: Bound", "tier: storage", "app: web"} {
		if !strings.Contains(y, want) {
			t.Errorf("get pvc -o yaml lacks %q:\n%s", want, y)
		}
	}
	keys := c.must("bin/etcdctl-lite", "get", "--prefix", "--keys-only", "/registry/persistentvolumeclaims")
	for _, k := range []string{"/registry/persistentvolumeclaims/default/data-web-0", "/registry/persistentvolumeclaims/default/data-web-db-1"} {
		if !strings.Contains(keys, k) {
			t.Errorf("etcd lacks %s:\n%s", k, keys)
		}
	}
	val := c.must("bin/etcdctl-lite", "get", "/registry/persistentvolumeclaims/default/data-web-db-0", "-o", "yaml")
	if !strings.Contains(val, "ownerReferences") || !strings.Contains(val, "name: web-db") {
		t.Errorf("etcdctl-lite value lacks the owner:\n%s", val)
	}
	desc := c.kubectl("describe", "pvc", "data-web-0")
	for _, want := range []string{"Used By:", "web-0", "Finalizers:", "kubernetes.io/pvc-protection", "Status:", "Bound"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe pvc lacks %q:\n%s", want, desc)
		}
	}
	if d := c.kubectl("describe", "statefulset", "web"); !strings.Contains(d, "data-web-1 (Bound)") {
		t.Errorf("describe statefulset does not list its claims:\n%s", d)
	}

	// Deleting web takes web's claims and folders, and nothing of web-db's.
	before := map[string][]byte{}
	for _, n := range []string{"data-web-db-0", "data-web-db-1"} {
		before[n], _ = os.ReadFile(filepath.Join(c.claimDir(n), "log"))
	}
	c.kubectl("delete", "statefulset", "web")
	waitClaimGone(t, c, cl, "data-web-0")
	waitClaimGone(t, c, cl, "data-web-1")
	for n, b := range before {
		got, ok := claimOf(t, cl, n)
		if !ok || got.Metadata.DeletionTimestamp != nil {
			t.Errorf("%s was deleted with set web", n)
		}
		now, err := os.ReadFile(filepath.Join(c.claimDir(n), "log"))
		if err != nil || !strings.HasPrefix(string(now), string(b)) {
			t.Errorf("%s lost data when web was deleted (%d bytes before, %d now, %v)", n, len(b), len(now), err)
		}
	}

	// --cascade=orphan leaves the pods, the claims and the folders.
	c.kubectl("delete", "statefulset", "web-db", "--cascade=orphan")
	waitFor(t, "web-db gone", func() bool {
		_, err := cl.StatefulSets().Get(tctx(t), "default", "web-db")
		return client.IsNotFound(err)
	})
	waitFor(t, "web-db's claims released", func() bool {
		for _, n := range []string{"data-web-db-0", "data-web-db-1"} {
			if got, ok := claimOf(t, cl, n); !ok || len(got.Metadata.OwnerReferences) != 0 {
				return false
			}
		}
		return true
	})
	sizes := map[string]int{}
	for _, n := range []string{"data-web-db-0", "data-web-db-1"} {
		b, _ := os.ReadFile(filepath.Join(c.claimDir(n), "log"))
		sizes[n] = len(b)
	}
	// Give the collector time to do wrong, then check nothing went.
	time.Sleep(3 * time.Second)
	for n, size := range sizes {
		got, ok := claimOf(t, cl, n)
		if !ok || got.Metadata.DeletionTimestamp != nil {
			t.Errorf("orphan cascade: claim %s deleted", n)
		}
		b, err := os.ReadFile(filepath.Join(c.claimDir(n), "log"))
		if err != nil || len(b) <= size {
			t.Errorf("orphan cascade: %s's folder lost or no longer written (%d bytes, was %d, %v)", n, len(b), size, err)
		}
	}
	if active, _ := activeReady(podsWith(t, cl, "app=web-db")); active != 2 {
		t.Errorf("orphan cascade: %d pods of web-db left, want 2", active)
	}
}

func TestStatefulSetScaleDownKeepsTheClaimUntilThePodIsGone(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, claimSet("sd", 2, "  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}", "ignore", 6))
	waitBound(t, c, cl, "data-sd-0", "data-sd-1")
	pod, err := cl.Pods().Get(tctx(t), "default", "sd-1")
	if err != nil {
		t.Fatal(err)
	}
	c.kubectl("scale", "statefulset/sd", "--replicas=1")

	// While sd-1 terminates (it ignores SIGTERM for its 6 s grace), its
	// claim is owned by the pod and the folder stays; its process writes on.
	sawTerminating, grew := false, false
	size := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := cl.Pods().Get(tctx(t), "default", "sd-1")
		if client.IsNotFound(err) || (err == nil && p.Metadata.Uid != pod.Metadata.Uid) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, ferr := os.ReadFile(filepath.Join(c.claimDir("data-sd-1"), "log"))
		if ferr != nil {
			t.Fatalf("sd-1's folder went while the pod was still in etcd (deletionTimestamp %v): %v", p.Metadata.DeletionTimestamp, ferr)
		}
		if p.Metadata.DeletionTimestamp != nil {
			if sawTerminating && len(b) > size {
				grew = true
			}
			sawTerminating, size = true, len(b)
			if got, ok := claimOf(t, cl, "data-sd-1"); !ok || !strings.Contains(ownerKinds(got), "Pod/sd-1 controller=true") {
				t.Errorf("the condemned pod does not own its claim: %v", ownerKinds(got))
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("sd-1 never went")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawTerminating || !grew {
		t.Errorf("sd-1 was not seen terminating while still writing (terminating %v, wrote %v)", sawTerminating, grew)
	}
	waitClaimGone(t, c, cl, "data-sd-1")
	if got, ok := claimOf(t, cl, "data-sd-0"); !ok || got.Metadata.DeletionTimestamp != nil {
		t.Error("the remaining ordinal's claim went too")
	}
	if _, err := os.Stat(c.claimDir("data-sd-0")); err != nil {
		t.Errorf("the remaining ordinal's folder: %v", err)
	}
}

func TestPodNamesAnExistingClaim(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	// A folder from an earlier kubelite, before claims were objects.
	legacy := c.claimDir("mydata")
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, "old"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.applyText(t, `apiVersion: v1
kind: Pod
metadata: {name: user}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, persistentVolumeClaim: {claimName: mydata}}]
  containers:
  - name: c
    command: [kubelite-app, --append, "$(VOLUME_DATA)/log", --every, 100ms]
    volumeMounts: [{name: data, mountPath: /data}]
`)
	// No claim yet: the pod waits, and says why.
	waitFor(t, "a FailedMount event", func() bool {
		return strings.Contains(c.kubectl("get", "events"), "FailedMount")
	})
	if p, _ := cl.Pods().Get(tctx(t), "default", "user"); p.GetStatus().GetPhase() != "Pending" {
		t.Errorf("a pod without its claim is %s, want Pending", p.GetStatus().GetPhase())
	}
	if out := c.kubectl("get", "pod", "user"); !strings.Contains(out, "ContainerCreating") {
		t.Errorf("a pod without its claim:\n%s", out)
	}
	c.applyText(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: mydata}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Mi}}}
`)
	waitBound(t, c, cl, "mydata")
	if b, err := os.ReadFile(filepath.Join(legacy, "old")); err != nil || string(b) != "kept" {
		t.Errorf("the earlier folder was not adopted as it was: %q %v", b, err)
	}
	// Deleting the claim in use: Terminating until the pod is gone.
	c.kubectl("delete", "pvc", "mydata", "--wait=false")
	time.Sleep(2 * time.Second)
	got, ok := claimOf(t, cl, "mydata")
	if !ok || got.Metadata.DeletionTimestamp == nil {
		t.Fatalf("claim in use: present %v, want Terminating", ok)
	}
	if out := c.kubectl("get", "pvc", "mydata"); !strings.Contains(out, "Terminating") {
		t.Errorf("get pvc of a claim being deleted:\n%s", out)
	}
	if _, err := os.Stat(legacy); err != nil {
		t.Errorf("the folder of a claim in use went: %v", err)
	}
	c.kubectl("delete", "pod", "user")
	waitClaimGone(t, c, cl, "mydata")
}

// Only pvc-protection keeps the folder here: the claim was bound on
// node-1, whose kubelet runs no pod that uses it any more; a pod on node-2
// uses it. Deleting the claim leaves it Terminating with its folder (and
// the writes going on) until that pod is gone; then the selected node's
// kubelet removes the folder.
func TestClaimInUseOnAnotherNodeIsProtected(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 100Mi}}}
`)
	pod := func(name, node string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, persistentVolumeClaim: {claimName: shared}}]
  containers:
  - name: c
    command: [kubelite-app, --append, "$(VOLUME_DATA)/log", --every, 100ms]
    volumeMounts: [{name: data, mountPath: /data}]
`, name, node)
	}
	c.applyText(t, pod("binder", "node-1"))
	waitBound(t, c, cl, "shared")
	if got, _ := claimOf(t, cl, "shared"); got.GetMetadata().GetAnnotations()["volume.kubernetes.io/selected-node"] != "node-1" {
		t.Fatalf("claim bound to %q, want node-1", got.GetMetadata().GetAnnotations()["volume.kubernetes.io/selected-node"])
	}
	c.kubectl("delete", "pod", "binder")
	waitFor(t, "binder gone", func() bool {
		_, err := cl.Pods().Get(tctx(t), "default", "binder")
		return client.IsNotFound(err)
	})
	c.applyText(t, pod("user", "node-2"))
	waitFor(t, "user running", func() bool {
		p, err := cl.Pods().Get(tctx(t), "default", "user")
		return err == nil && p.GetStatus().GetPhase() == "Running"
	})
	c.kubectl("delete", "pvc", "shared", "--wait=false")
	logf := filepath.Join(c.claimDir("shared"), "log")
	before, _ := os.ReadFile(logf)
	time.Sleep(3 * time.Second)
	got, ok := claimOf(t, cl, "shared")
	if !ok || got.Metadata.DeletionTimestamp == nil {
		t.Fatalf("claim in use on node-2: present %v, want Terminating", ok)
	}
	after, err := os.ReadFile(logf)
	if err != nil || len(after) <= len(before) {
		t.Fatalf("the folder of a claim in use on node-2 went or stopped growing (%d -> %d bytes): %v", len(before), len(after), err)
	}
	c.kubectl("delete", "pod", "user")
	waitClaimGone(t, c, cl, "shared")
}
