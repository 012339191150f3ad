package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/kubelet/runtime"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// claimKubelet is a kubelet without a runtime: a real apiserver, the
// claim manager, and pod workers put in by hand.
func claimKubelet(t *testing.T, node string) (*Kubelet, *claimManager) {
	t.Helper()
	srv := apiservertest.Start(t, apiservertest.Options{})
	k := &Kubelet{cfg: Config{NodeName: node, VolumeDir: t.TempDir()}, c: srv.Client, workers: map[string]*podWorker{}, finished: map[string]bool{}}
	k.claims = newClaimManager(k)
	return k, k.claims
}

// boundClaim creates a claim bound to node (finalizers: pvc-protection,
// added by the apiserver, and the folder's) with its folder on disk.
func boundClaim(t *testing.T, k *Kubelet, name, node string) *v1.PersistentVolumeClaim {
	t.Helper()
	ctx := context.Background()
	c, err := k.c.PersistentVolumeClaims().Create(ctx, &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: name, Namespace: "default",
		Annotations: map[string]string{api.AnnSelectedNode: node}, Finalizers: []string{api.FinalizerClaimFolder}},
		Spec: &v1.PersistentVolumeClaimSpec{AccessModes: []string{"ReadWriteOnce"}, Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "1Gi"}}}})
	if err != nil {
		t.Fatalf("create claim %s: %v", name, err)
	}
	if _, err := k.c.PersistentVolumeClaims().UpdateStatus(ctx, &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: name, Namespace: "default", Uid: c.Metadata.Uid},
		Status: &v1.PersistentVolumeClaimStatus{Phase: "Bound"}}); err != nil {
		t.Fatalf("bind %s: %v", name, err)
	}
	dir, _ := ClaimDir(k.cfg.VolumeDir, "default", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := k.c.PersistentVolumeClaims().Get(ctx, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// deleteUnprotected deletes a claim and plays pvc-protection letting go.
func deleteUnprotected(t *testing.T, k *Kubelet, name string) {
	t.Helper()
	ctx := context.Background()
	if _, err := k.c.PersistentVolumeClaims().Delete(ctx, "default", name, &v1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	dropFinalizer(t, k, name, api.FinalizerPVCProtection)
}

func dropFinalizer(t *testing.T, k *Kubelet, name, f string) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		c, err := k.c.PersistentVolumeClaims().Get(ctx, "default", name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		var keep []string
		for _, x := range c.Metadata.Finalizers {
			if x != f {
				keep = append(keep, x)
			}
		}
		c.Metadata.Finalizers = keep
		if _, err = k.c.PersistentVolumeClaims().Update(ctx, c); err == nil || client.IsNotFound(err) {
			return
		}
		if !client.IsConflict(err) || i > 10 {
			t.Fatalf("drop %s from %s: %v", f, name, err)
		}
	}
}

func folderExists(k *Kubelet, name string) bool {
	dir, _ := ClaimDir(k.cfg.VolumeDir, "default", name)
	_, err := os.Stat(dir)
	return err == nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func claimGone(k *Kubelet, name string) func() bool {
	return func() bool {
		_, err := k.c.PersistentVolumeClaims().Get(context.Background(), "default", name)
		return client.IsNotFound(err)
	}
}

// A claim bound on a node whose Node object is gone is cleaned up by
// another kubelet (the volume folder is shared); a claim whose node still
// exists is left to that node's kubelet until the Node goes.
func TestClaimOfADeletedNodeIsCleanedUpByAnotherKubelet(t *testing.T) {
	k, m := claimKubelet(t, "n2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := k.c.Nodes().Create(ctx, &v1.Node{Metadata: &v1.ObjectMeta{Name: "n-alive"}}); err != nil {
		t.Fatalf("create node: %v", err)
	}
	boundClaim(t, k, "orphaned", "n-gone")
	boundClaim(t, k, "elsewhere", "n-alive")
	deleteUnprotected(t, k, "orphaned")
	deleteUnprotected(t, k, "elsewhere")
	go m.run(ctx)
	m.podsSynced()

	waitFor(t, "the claim of the deleted node to go", claimGone(k, "orphaned"))
	if folderExists(k, "orphaned") {
		t.Errorf("claim gone but its folder is still there")
	}
	if !folderExists(k, "elsewhere") || claimGone(k, "elsewhere")() {
		t.Fatalf("a claim of a live node was cleaned up by another kubelet")
	}
	if _, err := k.c.Nodes().Delete(ctx, "", "n-alive", &v1.DeleteOptions{}); err != nil {
		t.Fatalf("delete node: %v", err)
	}
	waitFor(t, "the claim to go once its node is deleted", claimGone(k, "elsewhere"))
	if folderExists(k, "elsewhere") {
		t.Errorf("claim gone but its folder is still there")
	}
}

// After a restart, cleanup waits until the pods are adopted: a claim
// awaiting removal keeps its folder until podsSynced.
func TestClaimCleanupWaitsForPodsToBeAdopted(t *testing.T) {
	k, m := claimKubelet(t, "n1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	boundClaim(t, k, "data", "n1")
	deleteUnprotected(t, k, "data")
	go m.run(ctx)
	if !m.informer.WaitForSync(ctx) {
		t.Fatal("no sync")
	}
	time.Sleep(2 * time.Second) // cleanup would have run by now
	if !folderExists(k, "data") || claimGone(k, "data")() {
		t.Fatalf("folder removed before the kubelet adopted its pods")
	}
	m.podsSynced()
	waitFor(t, "cleanup once pods are adopted", claimGone(k, "data"))
	if folderExists(k, "data") {
		t.Errorf("claim gone but its folder is still there")
	}
}

// The cache may hold a deleted claim while etcd already has a newer claim
// of the same name: the newer claim keeps its folder.
func TestCleanupOfAStaleCachedClaimKeepsTheNewClaimsFolder(t *testing.T) {
	k, m := claimKubelet(t, "n1")
	ctx := context.Background()
	boundClaim(t, k, "data", "n1")
	deleteUnprotected(t, k, "data")
	infCtx, stop := context.WithCancel(ctx)
	go m.informer.Run(infCtx)
	if !m.informer.WaitForSync(infCtx) {
		t.Fatal("no sync")
	}
	stop() // the cache keeps the old claim
	dropFinalizer(t, k, "data", api.FinalizerClaimFolder)
	waitFor(t, "the old claim to go", claimGone(k, "data"))
	boundClaim(t, k, "data", "n1")
	if c, ok := m.informer.Get("default/data"); !ok || !awaitsFolderRemoval(c) {
		t.Fatalf("test setup: the cache should still show the old claim")
	}
	if err := m.cleanup(ctx, "default/data"); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if !folderExists(k, "data") {
		t.Fatalf("the new claim's folder was removed for the old claim")
	}
}

// A claim the cache shows bound and live may already be deleting in etcd
// (pvc-protection let go before the cache saw it): a starting pod must not
// get it, and no folder is made.
func TestMountReadsTheClaimLive(t *testing.T) {
	k, m := claimKubelet(t, "n1")
	ctx := context.Background()
	boundClaim(t, k, "data", "n1")
	dir, _ := ClaimDir(k.cfg.VolumeDir, "default", "data")
	_ = os.RemoveAll(dir)
	infCtx, stop := context.WithCancel(ctx)
	go m.informer.Run(infCtx)
	if !m.informer.WaitForSync(infCtx) {
		t.Fatal("no sync")
	}
	stop()
	if _, err := k.c.PersistentVolumeClaims().Delete(ctx, "default", "data", &v1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if c, ok := m.informer.Get("default/data"); !ok || c.Metadata.DeletionTimestamp != nil {
		t.Fatalf("test setup: the cache should show the claim live")
	}
	pod := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: &v1.PodSpec{
		Volumes: []*v1.Volume{{Name: "data", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}
	if err := m.mount(ctx, pod); !errors.Is(err, errClaimNotReady) {
		t.Fatalf("mount = %v, want the claim not ready (being deleted)", err)
	}
	if folderExists(k, "data") {
		t.Fatalf("a folder was made for a claim being deleted")
	}
}

// Which pods keep a claim's folder: a worker that mounted the claim or
// started containers, or has not looked yet, counts until it leaves
// k.workers (force-deleted pods included); a pod waiting in
// ContainerCreating does not.
func TestPodUsesClaim(t *testing.T) {
	pod := func(claim string) *v1.Pod {
		return &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default", Uid: "u"}, Spec: &v1.PodSpec{
			Volumes: []*v1.Volume{{Name: "d", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}}
	}
	cases := []struct {
		name           string
		claim          string
		gone           bool
		checked, inUse bool
		want           bool
	}{
		{"mounted and running", "data", false, true, true, true},
		{"force-deleted, still being killed", "data", true, true, true, true},
		{"adopted, not looked at yet", "data", false, false, false, true},
		{"force-deleted before it looked", "data", true, false, false, true},
		{"waiting in ContainerCreating", "data", false, true, false, false},
		{"another claim", "other", false, true, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := &Kubelet{workers: map[string]*podWorker{}}
			w := &podWorker{k: k, uid: "u", pod: pod(c.claim), gone: c.gone}
			w.claimsChecked.Store(c.checked)
			w.claimsInUse.Store(c.inUse)
			k.workers["u"] = w
			if got := k.podUsesClaim("default", "data"); got != c.want {
				t.Errorf("podUsesClaim = %v, want %v", got, c.want)
			}
		})
	}
}

// Starting a container never makes a claim's folder: only binding does,
// after the claim has the finalizer that removes it.
func TestContainerStartDoesNotMakeAClaimFolder(t *testing.T) {
	root := t.TempDir()
	rt, err := runtime.New(runtime.Config{Root: root, ShimPath: os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{cfg: Config{NodeName: "n1", VolumeDir: t.TempDir()}, rt: rt, workers: map[string]*podWorker{}}
	pod := &v1.Pod{Metadata: &v1.ObjectMeta{Name: "p", Namespace: "default", Uid: "u"}, Spec: &v1.PodSpec{
		Containers: []*v1.Container{{Name: "c", VolumeMounts: []*v1.VolumeMount{{Name: "d", MountPath: "/data"}}}},
		Volumes:    []*v1.Volume{{Name: "d", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}
	w := &podWorker{k: k, uid: "u", pod: pod}
	if _, err := w.volumes(pod, pod.Spec.Containers[0]); err == nil {
		t.Errorf("volumes: no error for a claim without a folder")
	}
	if folderExists(k, "data") {
		t.Fatalf("a container start made the claim's folder")
	}
	dir, _ := ClaimDir(k.cfg.VolumeDir, "default", "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := w.volumes(pod, pod.Spec.Containers[0])
	if err != nil || got["d"] != dir {
		t.Fatalf("volumes with the folder made = %v, %v", got, err)
	}
}

func TestClaimRetryAfter(t *testing.T) {
	notReady := fmt.Errorf("%w: persistentvolumeclaim %q not found", errClaimNotReady, "data")
	other := errors.New("apiserver unavailable")
	cases := []struct {
		name      string
		err       error
		started   bool
		last      time.Duration
		wait      time.Duration
		eventOnly bool
	}{
		{"running pod, claim missing: wait for its event", notReady, true, 0, 0, true},
		{"running pod, claim missing, after back-off: still no timer", notReady, true, claimRetryMax, 0, true},
		{"running pod, apiserver error: back-off", other, true, 0, 500 * time.Millisecond, false},
		{"waiting pod, claim missing: back-off", notReady, false, 0, 500 * time.Millisecond, false},
		{"waiting pod: doubles", notReady, false, time.Second, 2 * time.Second, false},
		{"waiting pod: capped", notReady, false, claimRetryMax, claimRetryMax, false},
	}
	for _, c := range cases {
		wait, eventOnly := claimRetryAfter(c.err, c.started, c.last)
		if wait != c.wait || eventOnly != c.eventOnly {
			t.Errorf("%s: got %v eventOnly=%v, want %v eventOnly=%v", c.name, wait, eventOnly, c.wait, c.eventOnly)
		}
	}
}
