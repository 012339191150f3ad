package garbagecollector

import (
	"context"
	"testing"
	"time"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// An orphan cascade strips the owner's reference from every dependent in
// etcd, including one the collector's cache has not seen: otherwise that
// dependent keeps a reference to a gone owner and is collected.
func TestOrphanStripsDependentsTheCacheHasNotSeen(t *testing.T) {
	srv := apiservertest.Start(t, apiservertest.Options{})
	c := srv.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := client.NewInformer(c.Pods(), nil)
	claims := client.NewInformer(c.PersistentVolumeClaims(), nil) // never run: a lagging cache
	gc := New(c)
	StoreFor(gc, pods)
	StoreFor(gc, claims)
	go pods.Run(ctx)
	if !pods.WaitForSync(ctx) {
		t.Fatal("no sync")
	}
	go gc.Run(ctx, 1)

	owner, err := c.Pods().Create(ctx, &v1.Pod{Metadata: &v1.ObjectMeta{Name: "owner", Namespace: "default"},
		Spec: &v1.PodSpec{NodeName: "n1", Containers: []*v1.Container{{Name: "c", Image: "sleep", Command: []string{"sleep", "1000"}}}}})
	if err != nil {
		t.Fatalf("create owner: %v", err)
	}
	_, err = c.PersistentVolumeClaims().Create(ctx, &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: "data", Namespace: "default",
		OwnerReferences: []*v1.OwnerReference{{ApiVersion: "v1", Kind: "Pod", Name: "owner", Uid: owner.Metadata.Uid}}},
		Spec: &v1.PersistentVolumeClaimSpec{AccessModes: []string{"ReadWriteOnce"}, Resources: &v1.VolumeResourceRequirements{Requests: map[string]string{"storage": "1Gi"}}}})
	if err != nil {
		t.Fatalf("create dependent: %v", err)
	}
	if _, err := c.Pods().Delete(ctx, "default", "owner", &v1.DeleteOptions{PropagationPolicy: "Orphan"}); err != nil {
		t.Fatalf("orphan delete: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := c.Pods().Get(ctx, "default", "owner")
		if client.IsNotFound(err) || (err == nil && !hasFinalizer(p.Metadata, api.FinalizerOrphan) && p.Metadata.DeletionTimestamp != nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan finalizer not dropped: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl, err := c.PersistentVolumeClaims().Get(ctx, "default", "data")
	if err != nil {
		t.Fatalf("dependent: %v", err)
	}
	if len(cl.Metadata.OwnerReferences) != 0 {
		t.Fatalf("orphan finalizer dropped while the dependent still names the owner: %v", cl.Metadata.OwnerReferences)
	}
}
