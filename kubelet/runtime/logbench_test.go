package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logWorkloads write 1e6 lines of 100 bytes (100 MB): in 8 KiB writes,
// and one write per line.
var logWorkloads = map[string]string{
	"blocks":   `yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -n 1000000`,
	"per-line": `awk 'BEGIN { for (i = 0; i < 1000000; i++) { print "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; fflush() } }'`,
}

func childCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLogCopy measures the cost of the shim's log copier: the same
// 100 MB of output written straight to a file, and through the shim (pipe,
// CRI entries, the file). It reports wall time and CPU (the workload's, and
// the shim's included) per run.
//
//	go test -run '^$' -bench LogCopy -benchtime 3x ./kubelet/runtime/
func BenchmarkLogCopy(b *testing.B) {
	for _, w := range []string{"blocks", "per-line"} {
		benchLogCopy(b, w, logWorkloads[w])
	}
}

func benchLogCopy(b *testing.B, name, logWorkload string) {
	b.Run(name+"/direct-file", func(b *testing.B) {
		dir := b.TempDir()
		var cpu time.Duration
		start := time.Now()
		for i := 0; i < b.N; i++ {
			before := childCPU()
			cmd := exec.Command("sh", "-c", logWorkload+" > "+filepath.Join(dir, "out.log"))
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			cpu += childCPU() - before
			os.Remove(filepath.Join(dir, "out.log"))
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "wall-ms/op")
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	})
	b.Run(name+"/through-shim", func(b *testing.B) {
		shim := buildShimB(b)
		r, err := New(Config{Root: b.TempDir(), ShimPath: shim})
		if err != nil {
			b.Fatal(err)
		}
		var cpu time.Duration
		start := time.Now()
		for i := 0; i < b.N; i++ {
			before := childCPU()
			c, err := r.Start(context.Background(), ContainerSpec{PodUID: "bench", Name: "c" + strings.Repeat("x", i), Command: []string{"sh", "-c", logWorkload}, WorkingDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			<-c.Done()
			cpu += childCPU() - before
			if st, _ := os.Stat(c.LogPath); st == nil || st.Size() < 99e6 {
				b.Fatalf("log has %v bytes", st)
			}
			os.Remove(c.LogPath)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "wall-ms/op")
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		_ = r.RemovePod("bench")
	})
}

// buildShimB builds the shim, or takes KUBELITE_BENCH_SHIM (to compare
// with another version's).
func buildShimB(b *testing.B) string {
	if p := os.Getenv("KUBELITE_BENCH_SHIM"); p != "" {
		return p
	}
	dir := b.TempDir()
	p := filepath.Join(dir, "kubelet-shim")
	if out, err := exec.Command("go", "build", "-o", p, "github.com/kubelite/kubelite/kubelet/shim").CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	return p
}
