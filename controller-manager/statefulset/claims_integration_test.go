package statefulset

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/controller-manager/garbagecollector"
	"github.com/kubelite/kubelite/controller-manager/pvcprotection"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// A condemned pod owns its claim (whenScaled: Delete). When the collector
// deletes that pod in the foreground (delete sts --cascade=foreground in
// the middle of a scale-down), the pod must not wait for its claim: the
// claim is held by pvc-protection until the pod leaves etcd. Real
// apiserver, collector and pvc-protection controller; the test plays the
// kubelet's final grace-0 delete.
func TestForegroundDeletedCondemnedPodAndItsClaimBothGo(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.Options{})
	c := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	pods := client.NewInformer(c.Pods(), nil)
	claims := client.NewInformer(c.PersistentVolumeClaims(), nil)
	gc := garbagecollector.New(c)
	garbagecollector.StoreFor(gc, pods)
	garbagecollector.StoreFor(gc, claims)
	pvcp := pvcprotection.New(c, claims, pods)
	go pods.Run(ctx)
	go claims.Run(ctx)
	if !pods.WaitForSync(ctx) || !claims.WaitForSync(ctx) {
		t.Fatal("informers did not sync")
	}
	go gc.Run(ctx, 2)
	go pvcp.Run(ctx, 1)

	set := setWith("Retain", "Delete")
	pod, err := c.Pods().Create(ctx, &v1.Pod{Metadata: &v1.ObjectMeta{Name: "web-2", Namespace: "default"},
		Spec: &v1.PodSpec{NodeName: "n1", Containers: []*v1.Container{{Name: "c", Image: "sleep", Command: []string{"sleep", "1000"}}},
			Volumes: []*v1.Volume{{Name: "data", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data-web-2"}}}}})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	refs, _ := ClaimOwnerRefs(nil, set, pod.Metadata, true)
	claim := claimsFor(set, 2)[0]
	claim.Metadata.OwnerReferences = refs
	if _, err := c.PersistentVolumeClaims().Create(ctx, claim); err != nil {
		t.Fatalf("create claim: %v", err)
	}
	uid := pod.Metadata.Uid
	if _, err := c.Pods().Delete(ctx, "default", "web-2", &v1.DeleteOptions{PropagationPolicy: "Foreground", Preconditions: &v1.Preconditions{Uid: &uid}}); err != nil {
		t.Fatalf("foreground delete: %v", err)
	}
	// The kubelet: once the pod terminates, its final delete.
	zero := int64(0)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		_, perr := c.Pods().Get(ctx, "default", "web-2")
		_, cerr := c.PersistentVolumeClaims().Get(ctx, "default", "data-web-2")
		if client.IsNotFound(perr) && client.IsNotFound(cerr) {
			return
		}
		if perr == nil {
			_, _ = c.Pods().Delete(ctx, "default", "web-2", &v1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &v1.Preconditions{Uid: &uid}})
		}
		time.Sleep(200 * time.Millisecond)
	}
	p, perr := c.Pods().Get(ctx, "default", "web-2")
	cl, cerr := c.PersistentVolumeClaims().Get(ctx, "default", "data-web-2")
	t.Fatalf("stuck after 60s: pod %v (finalizers %v), claim %v (finalizers %v)", perr, p.GetMetadata().GetFinalizers(), cerr, cl.GetMetadata().GetFinalizers())
}

// The claim cache may still show a claim live that etcd already has
// Terminating: createClaims reads it live and holds the pod back.
func TestCreateClaimsReadsTheClaimLive(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.Options{})
	c := srv.Client
	ctx := context.Background()
	set := setWith("Retain", "Retain")
	if _, err := c.PersistentVolumeClaims().Create(ctx, claimsFor(set, 0)[0]); err != nil {
		t.Fatalf("create claim: %v", err)
	}
	claims := client.NewInformer(c.PersistentVolumeClaims(), nil)
	infCtx, stop := context.WithCancel(ctx)
	go claims.Run(infCtx)
	if !claims.WaitForSync(infCtx) {
		t.Fatal("no sync")
	}
	stop() // the cache keeps the claim as it was
	if _, err := c.PersistentVolumeClaims().Delete(ctx, "default", "data-web-0", &v1.DeleteOptions{}); err != nil {
		t.Fatalf("delete claim: %v", err)
	}
	if got, ok := claims.Get("default/data-web-0"); !ok || got.Metadata.DeletionTimestamp != nil {
		t.Fatal("test setup: the cache should show the claim live")
	}
	sc := &Controller{c: c, rec: record.New(c, "statefulset-controller", ""), claims: claims}
	err := sc.createClaims(ctx, set, 0)
	if err == nil || !strings.Contains(err.Error(), "being deleted") {
		t.Fatalf("createClaims = %v, want the pod held back: the claim is being deleted", err)
	}
}

// Under Parallel, one ordinal held back by its claim (Terminating) does
// not stop the others from being created.
func TestParallelScaleContinuesPastABlockedClaim(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.Options{})
	c := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	set := setWith("Retain", "Retain")
	set.Metadata.Uid = ""
	three := int32(3)
	set.Spec.Replicas = &three
	set.Spec.PodManagementPolicy = "Parallel"
	set.Spec.ServiceName = "web"
	set.Spec.VolumeClaimTemplates[0].Spec = &v1.PersistentVolumeClaimSpec{AccessModes: []string{"ReadWriteOnce"},
		Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "1Gi"}}}
	set.Spec.Template = &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Image: "sleep", Command: []string{"sleep", "1000"},
			VolumeMounts: []*v1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}}
	// data-web-0 is Terminating (nothing lifts its protection here).
	if _, err := c.PersistentVolumeClaims().Create(ctx, claimsFor(set, 0)[0]); err != nil {
		t.Fatalf("create claim: %v", err)
	}
	if _, err := c.PersistentVolumeClaims().Delete(ctx, "default", "data-web-0", &v1.DeleteOptions{}); err != nil {
		t.Fatalf("delete claim: %v", err)
	}
	if _, err := c.StatefulSets().Create(ctx, set); err != nil {
		t.Fatalf("create set: %v", err)
	}
	sets := client.NewInformer(c.StatefulSets(), nil)
	pods := client.NewInformer(c.Pods(), nil)
	revs := client.NewInformer(c.ControllerRevisions(), nil)
	claims := client.NewInformer(c.PersistentVolumeClaims(), nil)
	sc := New(c, record.New(c, "statefulset-controller", ""), sets, pods, revs, claims)
	for _, run := range []func(context.Context){sets.Run, pods.Run, revs.Run, claims.Run} {
		go run(ctx)
	}
	go sc.Run(ctx, 1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, e1 := c.Pods().Get(ctx, "default", "web-1")
		_, e2 := c.Pods().Get(ctx, "default", "web-2")
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web-1/web-2 not created while web-0 waits for its claim: %v, %v", e1, e2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := c.Pods().Get(ctx, "default", "web-0"); !client.IsNotFound(err) {
		t.Errorf("web-0 created while its claim is Terminating: %v", err)
	}
}
