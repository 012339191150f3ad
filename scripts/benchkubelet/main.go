// Command benchkubelet measures one kubelet with real processes: pod startup
// latency (create call -> the process reports its start), delete -> SIGTERM
// received, SIGKILL lateness after the grace deadline, and memory per
// running pod (kubelet plus shims). It starts the real apiserver and kubelet
// binaries from bin/; run it via scripts/bench-kubelet.sh.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scripts/benchutil"
)

func fail(format string, args ...any) { benchutil.Fail("benchkubelet", format, args...) }

var freeAddr = benchutil.FreeAddr

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

// readMarks reads "<what> <nanos> <pid> <pod>" lines: pod -> time.
func readMarks(path string) map[string]time.Time {
	out := map[string]time.Time{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Fields(sc.Text())
		if len(p) == 4 {
			n, _ := strconv.ParseInt(p[1], 10, 64)
			out[p[3]] = time.Unix(0, n)
		}
	}
	return out
}

func waitUntil(what string, max time.Duration, cond func() bool) {
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			fail("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pss sums Pss (KiB) from /proc/<pid>/smaps_rollup.
func pss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// shimPids finds the kubelet-shim processes working under root.
func shimPids(root string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) >= 2 && strings.HasSuffix(args[0], "kubelet-shim") && strings.HasPrefix(args[1], root) {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			out = append(out, pid)
		}
	}
	return out
}

var logLevel string

func main() {
	n := flag.Int("pods", 200, "pods for the startup and SIGTERM phases")
	killN := flag.Int("kill-pods", 50, "pods for the SIGKILL phase")
	pace := flag.Duration("pace", 20*time.Millisecond, "time between two creates (or deletes)")
	bin := flag.String("bin", "bin", "folder with the built binaries")
	flag.StringVar(&logLevel, "kubelet-log-level", "warn", "the kubelet's --log-level (debug shows each start's timing)")
	flag.Parse()
	binDir, _ := filepath.Abs(*bin)
	work, err := os.MkdirTemp("", "kubelite-bench-kubelet-")
	if err != nil {
		fail("%v", err)
	}
	benchutil.AtExit(func() { os.RemoveAll(work) })
	defer benchutil.Cleanup()

	apiAddr := freeAddr()
	api := exec.Command(filepath.Join(binDir, "apiserver"), "--listen", apiAddr, "--data-dir", filepath.Join(work, "api"),
		"--etcd-client-url", "http://"+freeAddr(), "--etcd-peer-url", "http://"+freeAddr(), "--log-level", "warn")
	api.Stderr = os.Stderr
	if err := api.Start(); err != nil {
		fail("start apiserver: %v", err)
	}
	benchutil.AtExit(func() { _ = api.Process.Signal(syscall.SIGTERM); _ = api.Wait() })
	c, err := client.New(apiAddr)
	if err != nil {
		fail("%v", err)
	}
	defer c.Close()
	bg := context.Background()
	waitUntil("the apiserver", 60*time.Second, func() bool { _, _, err := c.Nodes().List(bg, nil); return err == nil })

	root := filepath.Join(work, "kubelet")
	kl := exec.Command(filepath.Join(binDir, "kubelet"), "--apiserver", apiAddr, "--node-name", "bench-node", "--root-dir", root,
		"--listen", "127.0.0.1:0", "--max-pods", "1000", "--log-level", logLevel)
	kl.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	kl.Stderr = os.Stderr
	if err := kl.Start(); err != nil {
		fail("start kubelet: %v", err)
	}
	benchutil.AtExit(func() {
		_ = kl.Process.Signal(syscall.SIGTERM)
		_ = kl.Wait()
		// The kubelet leaves containers running by design: stop them.
		killContainers(root)
	})
	waitUntil("the node", 60*time.Second, func() bool { _, err := c.Nodes().Get(bg, "", "bench-node"); return err == nil })
	time.Sleep(500 * time.Millisecond)
	idlePss := pss(kl.Process.Pid)

	starts, terms := filepath.Join(work, "starts"), filepath.Join(work, "terms")
	created := map[string]time.Time{}
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("p%d", i)
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.PodSpec{NodeName: "bench-node",
			Containers: []*v1.Container{{Name: "main", Command: []string{"kubelite-app", "--report-start", starts, "--report-term", terms, "--every", "1h"}}}}}
		created[name] = time.Now()
		if _, err := c.Pods().Create(bg, p); err != nil {
			fail("create %s: %v", name, err)
		}
		time.Sleep(*pace)
	}
	waitUntil("every pod's process to start", 120*time.Second, func() bool { return len(readMarks(starts)) >= *n })
	var startLat []time.Duration
	for name, t := range readMarks(starts) {
		startLat = append(startLat, t.Sub(created[name]))
	}
	time.Sleep(time.Second) // let status writes settle before measuring memory
	klPss := pss(kl.Process.Pid)
	var shimPss int64
	shims := shimPids(root)
	for _, pid := range shims {
		shimPss += pss(pid)
	}

	deleted := map[string]time.Time{}
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("p%d", i)
		if _, err := c.Pods().Delete(bg, "default", name, nil); err != nil {
			fail("delete %s: %v", name, err)
		}
		deleted[name] = time.Now()
		time.Sleep(*pace)
	}
	waitUntil("every SIGTERM", 120*time.Second, func() bool { return len(readMarks(terms)) >= *n })
	var termLat []time.Duration
	for name, t := range readMarks(terms) {
		termLat = append(termLat, t.Sub(deleted[name]))
	}
	waitUntil("every pod to go", 120*time.Second, func() bool { l, _, _ := c.Pods().List(bg, nil); return len(l) == 0 })

	// SIGKILL lateness: pods that ignore SIGTERM, grace 1 s, deleted together.
	// Grace 3 s: above the 2 s a container always gets after its preStop
	// hook (Kubernetes' minimum), so the deadline is deletionTimestamp.
	grace := int64(3)
	for i := 0; i < *killN; i++ {
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Name: fmt.Sprintf("k%d", i)}, Spec: &v1.PodSpec{NodeName: "bench-node", TerminationGracePeriodSeconds: &grace,
			Containers: []*v1.Container{{Name: "main", Command: []string{"kubelite-app", "--on-term", "ignore", "--every", "1h"}}}}}
		if _, err := c.Pods().Create(bg, p); err != nil {
			fail("create: %v", err)
		}
	}
	waitUntil("the SIGKILL pods to run", 120*time.Second, func() bool {
		l, _, _ := c.Pods().List(bg, &v1.ListRequest{FieldSelector: "status.phase=Running"})
		return len(l) == *killN
	})
	w, err := c.Pods().Watch(bg, &v1.WatchRequest{})
	if err != nil {
		fail("watch: %v", err)
	}
	for i := 0; i < *killN; i++ {
		if _, err := c.Pods().Delete(bg, "default", fmt.Sprintf("k%d", i), nil); err != nil {
			fail("delete: %v", err)
		}
	}
	var late []time.Duration
	seen := map[string]bool{}
	for len(seen) < *killN {
		_, p, err := w.Recv()
		if err != nil {
			fail("watch: %v", err)
		}
		if p == nil || p.Metadata.DeletionTimestamp == nil || seen[p.Metadata.Name] || len(p.GetStatus().GetContainerStatuses()) == 0 {
			continue
		}
		if t := p.Status.ContainerStatuses[0].GetState().GetTerminated(); t != nil && t.FinishedAt != nil {
			seen[p.Metadata.Name] = true
			late = append(late, t.FinishedAt.AsTime().Sub(p.Metadata.DeletionTimestamp.AsTime()))
		}
	}
	w.Stop()

	fmt.Printf("kubelite kubelet benchmark: one node, real processes (kubelite-app), apiserver + etcd + kubelet on the same machine\n\n")
	fmt.Printf("pod startup, create call -> process reports its start (%d pods, one every %v):\n", len(startLat), *pace)
	fmt.Printf("  p50 %v  p99 %v  max %v   (goal p50 <= 10ms, p99 <= 50ms; Kubernetes SLO p99 <= 5s)\n\n", round(pct(startLat, .5)), round(pct(startLat, .99)), round(pct(startLat, 1)))
	fmt.Printf("delete call returned -> process received SIGTERM (%d pods):\n", len(termLat))
	fmt.Printf("  p50 %v  p99 %v  max %v   (goal p99 <= 20ms)\n\n", round(pct(termLat, .5)), round(pct(termLat, .99)), round(pct(termLat, 1)))
	fmt.Printf("SIGKILL lateness, container finishedAt - deletionTimestamp (grace 3s, %d pods ignoring SIGTERM, deleted together):\n", len(late))
	fmt.Printf("  p50 %v  p99 %v  max %v   (goal <= 100ms)\n\n", round(pct(late, .5)), round(pct(late, .99)), round(pct(late, 1)))
	perPod := float64(klPss-idlePss+shimPss) / float64(*n)
	fmt.Printf("memory with %d running pods (PSS from smaps_rollup; the workloads themselves not counted):\n", *n)
	fmt.Printf("  kubelet %d KiB idle -> %d KiB; %d shims %d KiB in all\n", idlePss, klPss, len(shims), shimPss)
	fmt.Printf("  per pod: %.0f KiB (goal <= 2048 KiB)\n", perPod)
}

// killContainers kills what still runs under the kubelet's root: each
// workload's process group (its shim then exits).
func killContainers(root string) {
	states, _ := filepath.Glob(filepath.Join(root, "state", "*.state.json"))
	for _, s := range states {
		b, _ := os.ReadFile(s)
		var pgid int
		if i := strings.Index(string(b), `"pgid":`); i >= 0 {
			fmt.Sscanf(string(b[i+7:]), "%d", &pgid)
		}
		if pgid > 0 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
}
