// Command benchapi measures pod creation through the apiserver against raw
// etcd transactions of the same size on the same embedded etcd, in one run:
// latency with one client, throughput with many. Run it via
// scripts/bench-apiserver.sh.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
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
	"github.com/kubelite/kubelite/scripts/benchutil"
)

var freeAddr = benchutil.FreeAddr

func pod(name string) *v1.Pod {
	return &v1.Pod{
		Metadata: &v1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench", "tier": "web"}},
		Spec: &v1.PodSpec{Containers: []*v1.Container{{
			Name: "main", Command: []string{"sleep", "3600"},
			Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": "100m", "memory": "64Mi"}},
		}}},
	}
}

type result struct {
	lat  []time.Duration
	ops  int64
	took time.Duration
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return r.lat[int(p*float64(len(r.lat)-1))]
}

func (r result) rate() float64 { return float64(r.ops) / r.took.Seconds() }

// run calls op from workers goroutines until total calls are made.
func run(workers, total int, op func(i int) error) (result, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	lat := make([]time.Duration, 0, total)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, total/workers+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					break
				}
				t := time.Now()
				if err := op(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return result{lat: lat, ops: int64(len(lat)), took: time.Since(start)}, firstErr
}

func main() {
	seqN := flag.Int("sequential", 2000, "creates for the one-client latency phase")
	parN := flag.Int("parallel", 20000, "creates for the many-client throughput phase")
	clients := flag.Int("clients", 64, "concurrent clients in the throughput phase")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the throughput phase here")
	flag.Parse()

	dir, err := os.MkdirTemp("", "kubelite-bench-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	etcdAddr := freeAddr()
	cfg := server.Config{
		Listen: freeAddr(), DataDir: dir,
		EtcdClientURL: "http://" + etcdAddr, EtcdPeerURL: "http://" + freeAddr(),
		EventTTL: time.Hour, MaxRequestBytes: 3 << 20, ShutdownTimeout: 5 * time.Second,
	}
	ready := make(chan string, 1)
	cfg.Ready = func(a string) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
	defer func() { cancel(); <-done }()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr}, Logger: zap.NewNop()})
	if err != nil {
		panic(err)
	}
	defer ec.Close()

	// The raw value has the size of a stored pod.
	sample, err := c.Pods().Create(context.Background(), pod("size-probe"))
	if err != nil {
		panic(err)
	}
	enc, _ := api.Encode(sample)
	value := make([]byte, len(enc))
	_, _ = rand.Read(value)

	bg := context.Background()
	rawPut := func(prefix string) func(int) error {
		return func(i int) error {
			key := fmt.Sprintf("/bench/%s/%d", prefix, i)
			_, err := ec.Txn(bg).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(value))).Commit()
			return err
		}
	}
	create := func(ns string) func(int) error {
		return func(i int) error {
			p := pod(fmt.Sprintf("p-%d", i))
			p.Metadata.Namespace = ns
			_, err := c.Pods().Create(bg, p)
			return err
		}
	}
	check := func(r result, err error) result {
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchmark failed:", err)
			os.Exit(1)
		}
		return r
	}
	// Warm up both paths.
	check(run(4, 200, rawPut("warm")))
	check(run(4, 200, create("warm")))

	fmt.Printf("kubelite apiserver benchmark: stored pod %d bytes, embedded etcd, client and server on the same %d-core machine\n\n", len(enc), numCPU())
	rawSeq := check(run(1, *seqN, rawPut("seq")))
	apiSeq := check(run(1, *seqN, create("seq")))
	fmt.Printf("1 client, %d creates each:\n", *seqN)
	fmt.Printf("  raw etcd Txn put   p50 %8s  p99 %8s  %7.0f ops/s\n", rawSeq.pct(0.5).Round(time.Microsecond), rawSeq.pct(0.99).Round(time.Microsecond), rawSeq.rate())
	fmt.Printf("  apiserver Create   p50 %8s  p99 %8s  %7.0f ops/s\n", apiSeq.pct(0.5).Round(time.Microsecond), apiSeq.pct(0.99).Round(time.Microsecond), apiSeq.rate())
	fmt.Printf("  Create/raw p50 ratio %.2f (goal: Create p50 <= 1ms)\n\n", float64(apiSeq.pct(0.5))/float64(rawSeq.pct(0.5)))

	rawPar := check(run(*clients, *parN, rawPut("par")))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			panic(err)
		}
		_ = pprof.StartCPUProfile(f)
	}
	apiPar := check(run(*clients, *parN, create("par")))
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("%d clients, %d creates each:\n", *clients, *parN)
	fmt.Printf("  raw etcd Txn put   %7.0f ops/s  p50 %8s  p99 %8s\n", rawPar.rate(), rawPar.pct(0.5).Round(time.Microsecond), rawPar.pct(0.99).Round(time.Microsecond))
	fmt.Printf("  apiserver Create   %7.0f ops/s  p50 %8s  p99 %8s\n", apiPar.rate(), apiPar.pct(0.5).Round(time.Microsecond), apiPar.pct(0.99).Round(time.Microsecond))
	fmt.Printf("  Create/raw throughput ratio %.0f%% (goal: >= 60%%)\n", 100*apiPar.rate()/rawPar.rate())
}
