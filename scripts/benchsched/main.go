// Command benchsched measures scheduling throughput as Kubernetes'
// scheduler_perf does: the scheduler against a real apiserver on embedded
// etcd, no kubelets, many nodes, all pods created up front. It prints pods
// bound per second, per-pod latency, and raw etcd Txn throughput measured in
// the same run. Run it via scripts/bench-scheduler.sh.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scheduler/core"
	"github.com/kubelite/kubelite/scripts/benchutil"
)

var freeAddr = benchutil.FreeAddr

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchsched: "+format+"\n", args...)
	os.Exit(1)
}

// parallel runs f(i) for i in [0,n) on w goroutines.
func parallel(n, w int, f func(i int) error) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

func pct(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(p*float64(len(d)-1))]
}

func main() {
	nodes := flag.Int("nodes", 5000, "nodes")
	pods := flag.Int("pods", 10000, "pods created before the scheduler starts")
	workers := flag.Int("bind-workers", 32, "the scheduler's concurrent binds (and the raw etcd clients)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	dir, err := os.MkdirTemp("", "kubelite-bench-sched-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	etcdAddr := freeAddr()
	cfg := server.Config{Listen: freeAddr(), DataDir: dir, EtcdClientURL: "http://" + etcdAddr, EtcdPeerURL: "http://" + freeAddr(),
		EventTTL: time.Hour, MaxRequestBytes: 3 << 20, ShutdownTimeout: 5 * time.Second}
	ready := make(chan string, 1)
	cfg.Ready = func(a string) { ready <- a }
	actx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan error, 1)
	go func() { apiDone <- server.Run(actx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-apiDone:
		fail("apiserver: %v", err)
	}
	defer func() { stopAPI(); <-apiDone }()
	c, err := client.New(addr)
	if err != nil {
		fail("%v", err)
	}
	defer c.Close()
	bg := context.Background()

	t0 := time.Now()
	err = parallel(*nodes, 32, func(i int) error {
		_, err := c.Nodes().Create(bg, &v1.Node{Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i)},
			Status: &v1.NodeStatus{Allocatable: map[string]string{"cpu": "32", "memory": "256Gi", "pods": "110"},
				Conditions: []*v1.NodeCondition{{Type: "Ready", Status: "True"}}}})
		return err
	})
	if err != nil {
		fail("create nodes: %v", err)
	}
	var sample *v1.Pod
	err = parallel(*pods, 32, func(i int) error {
		p, err := c.Pods().Create(bg, &v1.Pod{Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{"app": "bench"}},
			Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"sleep", "3600"},
				Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}}}}}})
		if i == 0 {
			sample = p
		}
		return err
	})
	if err != nil {
		fail("create pods: %v", err)
	}
	setup := time.Since(t0)

	// Raw etcd: compare-and-swap transactions of a stored pod's size.
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr}, Logger: zap.NewNop()})
	if err != nil {
		fail("%v", err)
	}
	defer ec.Close()
	enc, _ := api.Encode(sample)
	value := make([]byte, len(enc))
	_, _ = rand.Read(value)
	rawN := *pods
	rs := time.Now()
	err = parallel(rawN, *workers, func(i int) error {
		key := fmt.Sprintf("/bench/raw/%d", i)
		_, err := ec.Txn(bg).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(value))).Commit()
		return err
	})
	if err != nil {
		fail("raw etcd: %v", err)
	}
	rawRate := float64(rawN) / time.Since(rs).Seconds()
	_, _ = ec.Delete(bg, "/bench/raw/", clientv3.WithPrefix())

	var mu sync.Mutex
	var attempt, e2e []time.Duration
	var firstPop, lastBound time.Time
	done := make(chan struct{})
	scfg := core.Config{APIServer: addr, SchedulerName: api.DefaultSchedulerName, BackoffInitial: time.Second, BackoffMax: 10 * time.Second,
		MaxUnschedulable: 5 * time.Minute, BindWorkers: *workers,
		Observe: func(_ *v1.Pod, _ string, queued, popped, bound time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if firstPop.IsZero() || popped.Before(firstPop) {
				firstPop = popped
			}
			if bound.After(lastBound) {
				lastBound = bound
			}
			attempt = append(attempt, bound.Sub(popped))
			e2e = append(e2e, bound.Sub(queued))
			if len(attempt) == *pods {
				close(done)
			}
		}}
	sctx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan error, 1)
	start := time.Now()
	go func() { schedDone <- core.Run(sctx, scfg) }()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		fail("not every pod was bound within 10 minutes (%d of %d)", len(attempt), *pods)
	}
	total := time.Since(start)
	stopSched()
	<-schedDone

	// Check: every pod bound, and no node over its pods or cpu.
	all, _, err := c.Pods().List(bg, nil)
	if err != nil {
		fail("%v", err)
	}
	perNode := map[string]int{}
	for _, p := range all {
		if p.Spec.NodeName == "" {
			fail("pod %s is not bound", p.Metadata.Name)
		}
		perNode[p.Spec.NodeName]++
	}
	maxPer := 0
	for _, n := range perNode {
		maxPer = max(maxPer, n)
	}
	window := lastBound.Sub(firstPop)
	rate := float64(*pods) / window.Seconds()
	fmt.Printf("kubelite scheduler benchmark: %d nodes, %d pods created up front (setup %v), no kubelets;\n", *nodes, *pods, setup.Round(time.Millisecond))
	fmt.Printf("scheduler, apiserver and embedded etcd in one process on the same cores, %d bind workers\n\n", *workers)
	fmt.Printf("throughput: %.0f pods/s bound (first pop -> last bind %v; with informer sync %v: %.0f pods/s)\n",
		rate, window.Round(time.Millisecond), total.Round(time.Millisecond), float64(*pods)/total.Seconds())
	fmt.Printf("per pod, popped -> bound:  p50 %v  p99 %v\n", pct(attempt, .5).Round(time.Microsecond), pct(attempt, .99).Round(time.Microsecond))
	fmt.Printf("per pod, queued -> bound:  p50 %v  p99 %v (all pods queued at once)\n", pct(e2e, .5).Round(time.Millisecond), pct(e2e, .99).Round(time.Millisecond))
	fmt.Printf("raw etcd Txn put, %d clients, %d-byte values: %.0f txn/s; scheduling/raw = %.0f%%\n", *workers, len(value), rawRate, 100*rate/rawRate)
	fmt.Printf("spread: %d nodes used, at most %d pods on one (allocatable 110)\n", len(perNode), maxPer)
	fmt.Printf("goal >= 1000 pods/s (Kubernetes scheduler_perf threshold 680 pods/s on large machines)\n")
}
