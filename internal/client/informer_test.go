package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func pod(name string) *v1.Pod {
	return &v1.Pod{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"true"}}}}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder counts the handler calls per object name.
type recorder struct {
	mu      sync.Mutex
	added   map[string]int
	deleted map[string]int
}

func (r *recorder) handler() client.Handler[*v1.Pod] {
	r.added, r.deleted = map[string]int{}, map[string]int{}
	return client.Handler[*v1.Pod]{
		OnAdd:    func(p *v1.Pod) { r.mu.Lock(); r.added[p.Metadata.Name]++; r.mu.Unlock() },
		OnDelete: func(p *v1.Pod) { r.mu.Lock(); r.deleted[p.Metadata.Name]++; r.mu.Unlock() },
	}
}

func (r *recorder) get(m *map[string]int, name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return (*m)[name]
}

func TestInformerFollowsChanges(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Client.Pods().Create(ctx, pod("before")); err != nil {
		t.Fatal(err)
	}
	inf := client.NewInformer(s.Client.Pods(), nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler())
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	if _, ok := inf.Get("default/before"); !ok {
		t.Error("the cache lacks an object that existed before the informer started")
	}
	if _, err := s.Client.Pods().Create(ctx, pod("after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new pod in the cache", func() bool { _, ok := inf.Get("default/after"); return ok })
	if _, err := s.Client.Pods().Delete(ctx, "default", "before", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "OnDelete", func() bool { return rec.get(&rec.deleted, "before") == 1 })
	if n := len(inf.List(nil)); n != 1 {
		t.Errorf("cache holds %d pods, want 1", n)
	}
}

// TestInformerRelistsAfterCompaction stops the informer's apiserver, changes
// and compacts etcd meanwhile, and checks that the informer, whose watch
// then resumes from a compacted revision, relists and converges.
func TestInformerRelistsAfterCompaction(t *testing.T) {
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t))
	e, err := server.StartEmbeddedEtcd(t.TempDir(), etcdURL, fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", apiservertest.FreePort(t))
	a := apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{etcdURL}, Listen: listen})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.Client.Pods().Create(ctx, pod("old")); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inf := client.NewInformer(c.Pods(), nil)
	rec := &recorder{}
	inf.AddHandler(rec.handler())
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	a.Stop()

	b := apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{etcdURL}})
	if _, err := b.Client.Pods().Delete(ctx, "default", "old", nil); err != nil {
		t.Fatal(err)
	}
	created, err := b.Client.Pods().Create(ctx, pod("new"))
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	fmt.Sscan(created.Metadata.ResourceVersion, &rev)
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if _, err := ec.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	apiservertest.Start(t, apiservertest.Options{EtcdEndpoints: []string{etcdURL}, Listen: listen})
	waitFor(t, "the informer to relist", func() bool {
		_, hasNew := inf.Get("default/new")
		_, hasOld := inf.Get("default/old")
		return hasNew && !hasOld
	})
	if rec.get(&rec.deleted, "old") != 1 || rec.get(&rec.added, "new") != 1 {
		t.Errorf("handlers: deleted[old]=%d added[new]=%d, want 1 and 1", rec.get(&rec.deleted, "old"), rec.get(&rec.added, "new"))
	}
}
