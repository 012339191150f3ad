package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// TestInformerBackOffResetsAfterHealthyWatches has the apiserver end every
// watch after one to two seconds, as it does after minutes in production:
// each re-watch must wait the base delay, not one that doubles towards 5s.
func TestInformerBackOffResetsAfterHealthyWatches(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Configure: func(c *server.Config) { c.MinRequestTimeout = time.Second }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := client.NewInformer(s.Client.Pods(), nil)
	var mu sync.Mutex
	var delays []time.Duration
	client.SetOnSleep(inf, func(d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() })
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	waitFor(t, "five watches to end", func() bool { mu.Lock(); defer mu.Unlock(); return len(delays) >= 5 })
	mu.Lock()
	defer mu.Unlock()
	for i, d := range delays {
		if d < 100*time.Millisecond || d >= 200*time.Millisecond {
			t.Errorf("re-watch %d waited %v after a watch that lasted a second, want the base delay (100-150ms; less would be a hot loop); all: %v", i+1, d, delays)
		}
	}
}

// TestInformerRelistsOnATooLargeResourceVersion moves the informer to an
// apiserver whose etcd is younger than its resourceVersion (a restored or
// replaced etcd): the watch is refused and the informer relists.
func TestInformerRelistsOnATooLargeResourceVersion(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", apiservertest.FreePort(t))
	a := apiservertest.Start(t, apiservertest.Options{Listen: listen})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := a.Client.Pods().Create(ctx, pod(fmt.Sprintf("old-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inf := client.NewInformer(c.Pods(), nil)
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	a.Stop()
	b := apiservertest.Start(t, apiservertest.Options{Listen: listen})
	if _, err := b.Client.Pods().Create(ctx, pod("fresh")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informer to relist from the new etcd", func() bool {
		_, ok := inf.Get("default/fresh")
		return ok && len(inf.List(nil)) == 1
	})
}

// TestInformersRelistAfterTheWatchCacheOverflows blocks an informer while a
// write burst overflows a small watch cache: its watch is dropped, its
// resourceVersion is then too old, and it must relist, ending with exactly
// the store's objects and having seen every key.
func TestInformersRelistAfterTheWatchCacheOverflows(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{Configure: func(c *server.Config) { c.WatchCacheSize = 20 }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lists atomic.Int64
	countLists := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/List") {
			lists.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	// Fixed flow-control windows (no BDP growth): what the stalled client
	// does not read stays on the server.
	c, err := client.New(s.Addr, countLists, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inf := client.NewInformer(c.Pods(), nil)
	gate := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]bool{}
	inf.AddHandler(client.Handler[*v1.Pod]{
		OnAdd: func(p *v1.Pod) {
			mu.Lock()
			seen[p.Metadata.Name] = true
			mu.Unlock()
			<-gate // the informer stalls until the burst is over
		},
		OnUpdate: func(_, p *v1.Pod) {
			mu.Lock()
			seen[p.Metadata.Name] = true
			mu.Unlock()
		},
	})
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				p := pod(fmt.Sprintf("p-%d", i))
				created, err := s.Client.Pods().Create(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				created.Metadata.Labels = map[string]string{"step": "updated"}
				if _, err := s.Client.Pods().Update(ctx, created); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "the informer's cache to equal the store", func() bool {
		items, _, err := s.Client.Pods().List(ctx, nil)
		if err != nil || len(items) != len(inf.List(nil)) {
			return false
		}
		for _, p := range items {
			got, ok := inf.Get("default/" + p.Metadata.Name)
			if !ok || got.Metadata.ResourceVersion != p.Metadata.ResourceVersion {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("p-%d", i)] {
			t.Errorf("handlers never saw p-%d", i)
		}
	}
	if got := lists.Load(); got < 2 {
		t.Errorf("the informer listed %d times, want a relist after the overflow", got)
	}
}

// TestInformerBacksOffBetweenRelistsThatAreAtOnceTooOld: when every watch
// is at once "too old" (a write burst outrunning the watch cache), the
// informer must not relist in a tight loop: it waits a growing back-off.
func TestInformerBacksOffBetweenRelistsThatAreAtOnceTooOld(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lists atomic.Int64
	countLists := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/List") {
			lists.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	tooOld := grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if strings.HasSuffix(method, "/Watch") {
			return nil, status.Error(codes.OutOfRange, "too old resource version")
		}
		return streamer(ctx, desc, cc, method, opts...)
	})
	c, err := client.New(s.Addr, countLists, tooOld)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	inf := client.NewInformer(c.Pods(), nil)
	var mu sync.Mutex
	var delays []time.Duration
	client.SetOnSleep(inf, func(d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() })
	go inf.Run(ctx)
	if !inf.WaitForSync(ctx) {
		t.Fatal("informer never synced")
	}
	time.Sleep(2 * time.Second)
	cancel()
	mu.Lock()
	defer mu.Unlock()
	n := lists.Load()
	if len(delays) < int(n)-1 {
		t.Errorf("%d relists but only %d back-off waits (%v): relists come in a tight loop", n, len(delays), delays)
	}
	for k, d := range delays {
		if d < 50*time.Millisecond {
			t.Errorf("wait %d before a relist was %v, want at least the base back-off (100ms, jitter only adds)", k+1, d)
		}
	}
	if n > 15 {
		t.Errorf("%d lists in 2s, want a few (100ms doubling back-off)", n)
	}
	t.Logf("%d lists in 2s, waits %v", n, delays)
}
