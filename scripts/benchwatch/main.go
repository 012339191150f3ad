// Command benchwatch measures the resident memory (RSS) of apiserver
// binaries holding many idle watches: each binary is started in turn with
// its own embedded etcd, given some pods, then watched N times from the
// current resourceVersion by a few clients; RSS is read from
// /proc/<pid>/status before and after. Run it via scripts/bench-watch-memory.sh.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scripts/benchutil"
)

const prog = "benchwatch"

type figures struct {
	idleKiB, watchedKiB, hwmKiB int64
	watches                     int
}

func main() {
	before := flag.String("before", "", "apiserver binary measured first")
	beforeLabel := flag.String("before-label", "before", "name of the first binary in the output")
	after := flag.String("after", "", "apiserver binary measured second (given flags that lift its watch caps)")
	watches := flag.Int("watches", 2000, "idle watches to open")
	clients := flag.Int("clients", 4, "client connections the watches are spread over")
	pods := flag.Int("pods", 200, "pods stored before the watches open")
	initial := flag.Bool("initial", false, "watch without a resourceVersion (each watch first receives every pod)")
	flag.Parse()
	if *before == "" || *after == "" {
		fmt.Fprintln(os.Stderr, "usage: benchwatch -before BIN -after BIN [-watches N]")
		os.Exit(2)
	}
	defer benchutil.Cleanup()
	// The caps of the new apiserver must allow the measurement.
	lift := []string{"--max-watches=" + strconv.Itoa(*watches+1000), "--max-watches-per-client=" + strconv.Itoa(*watches+1000)}
	b := measure(*before, nil, *watches, *clients, *pods, *initial)
	a := measure(*after, lift, *watches, *clients, *pods, *initial)
	mode := "from the current resourceVersion"
	if *initial {
		mode = "without a resourceVersion (initial list of every pod)"
	}
	fmt.Printf("apiserver RSS with %d idle pod watches over %d connections, %s, %d pods stored:\n", *watches, *clients, mode, *pods)
	for _, r := range []struct {
		label string
		f     figures
	}{{*beforeLabel + " (before)", b}, {"this tree (after)", a}} {
		fmt.Printf("  %-20s idle %6.1f MiB  with %d watches %7.1f MiB  (+%.1f MiB, %.1f KiB per watch)  peak %7.1f MiB\n",
			r.label, mib(r.f.idleKiB), r.f.watches, mib(r.f.watchedKiB), mib(r.f.watchedKiB-r.f.idleKiB),
			float64(r.f.watchedKiB-r.f.idleKiB)/float64(r.f.watches), mib(r.f.hwmKiB))
	}
	fmt.Printf("  after/before RSS with watches: %.2f\n", float64(a.watchedKiB)/float64(b.watchedKiB))
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// measure starts bin, fills it and opens the watches, and returns its RSS.
func measure(bin string, extra []string, n, clients, pods int, initial bool) figures {
	dir, err := os.MkdirTemp("", "kubelite-benchwatch-")
	if err != nil {
		benchutil.Fail(prog, "%v", err)
	}
	defer os.RemoveAll(dir)
	addr := benchutil.FreeAddr()
	args := append([]string{"--listen", addr, "--data-dir", dir,
		"--etcd-client-url", "http://" + benchutil.FreeAddr(), "--etcd-peer-url", "http://" + benchutil.FreeAddr(),
		"--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		benchutil.Fail(prog, "start %s: %v", bin, err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	benchutil.AtExit(stop)
	defer stop()

	conns := make([]*client.Client, clients)
	for i := range conns {
		c, err := client.New(addr)
		if err != nil {
			benchutil.Fail(prog, "%v", err)
		}
		defer c.Close()
		conns[i] = c
	}
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := conns[0].Pods().List(cctx, nil)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			benchutil.Fail(prog, "%s did not serve within 60s: %v", bin, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := 0; i < pods; i++ {
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Labels: map[string]string{"app": "bench"}},
			Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "main", Command: []string{"sleep", "3600"}}}}}
		if _, err := conns[0].Pods().Create(ctx, p); err != nil {
			benchutil.Fail(prog, "create: %v", err)
		}
	}
	_, rv, err := conns[0].Pods().List(ctx, nil)
	if err != nil {
		benchutil.Fail(prog, "list: %v", err)
	}
	if initial {
		rv = ""
	}
	time.Sleep(2 * time.Second)
	var f figures
	f.idleKiB, _ = rss(cmd.Process.Pid)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []*client.WatchStream[*v1.Pod]
	next := make(chan int)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				w, err := conns[i%clients].Pods().Watch(ctx, &v1.WatchRequest{ResourceVersion: rv})
				if err != nil {
					benchutil.Fail(prog, "watch %d: %v", i, err)
				}
				if initial {
					for j := 0; j < pods; j++ {
						if _, _, err := w.Recv(); err != nil {
							benchutil.Fail(prog, "watch %d: %v", i, err)
						}
					}
				}
				mu.Lock()
				open = append(open, w)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	time.Sleep(3 * time.Second)
	f.watchedKiB, f.hwmKiB = rss(cmd.Process.Pid)
	f.watches = len(open)
	for _, w := range open {
		w.Stop()
	}
	return f
}

// rss reads VmRSS and VmHWM (peak) of pid, in KiB.
func rss(pid int) (cur, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		benchutil.Fail(prog, "%v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			cur = n
		case "VmHWM":
			peak = n
		}
	}
	return cur, peak
}
