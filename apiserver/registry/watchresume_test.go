package registry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/apiserver/registry"
	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// noLeaderWatcher ends the first etcd watch on the pods prefix, after it
// delivered one change, as etcd does during a leader election.
type noLeaderWatcher struct {
	clientv3.Watcher
	broken atomic.Bool
}

func (w *noLeaderWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := w.Watcher.Watch(ctx, key, opts...)
	if key != "/registry/pods/" || w.broken.Load() {
		return in
	}
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for wr := range in {
			if len(wr.Events) > 0 && w.broken.CompareAndSwap(false, true) {
				out <- wr
				out <- clientv3.WatchResponse{Canceled: true, CancelReason: "etcdserver: no leader"}
				for range in {
				}
				return
			}
			out <- wr
		}
	}()
	return out
}

func TestEtcdWatchErrorResumesWithoutEndingWatchers(t *testing.T) {
	e, err := server.StartEmbeddedEtcd(t.TempDir(), fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)), fmt.Sprintf("http://127.0.0.1:%d", apiservertest.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := v3client.New(e.Server)
	defer c.Close()
	flaky := &noLeaderWatcher{Watcher: c.Watcher}
	c.Watcher = flaky
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reg := registry.New(c, registry.Options{})
	reg.Start(ctx)
	if err := reg.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	pods := reg.Store("Pod")
	sel, err := api.NewSelector(pods.Kind(), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := pods.Watch(ctx, sel, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []string
	for i := 0; i < 3; i++ {
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "default"}, Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Image: "x", Command: []string{"true"}}}}}
		if _, err := pods.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
		for len(got) <= i {
			select {
			case <-w.Ready():
				for _, ev := range w.Take() {
					got = append(got, ev.Object.GetMetadata().GetName())
				}
			case <-w.Done():
				t.Fatalf("the watcher ended after etcd's watch broke (events so far %v): %v", got, w.Err())
			case <-deadline:
				t.Fatalf("no event for p%d; got %v", i, got)
			}
		}
	}
	if !flaky.broken.Load() {
		t.Fatal("etcd's watch was never broken")
	}
	if fmt.Sprint(got) != "[p0 p1 p2]" {
		t.Errorf("events %v, want [p0 p1 p2]", got)
	}
}
