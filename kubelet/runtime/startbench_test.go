package runtime

import (
	"context"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

func BenchmarkStartLatency(b *testing.B) {
	for _, withCg := range []bool{false, true} {
		var cg *Cgroups
		if withCg {
			cg, _ = DetectCgroups("bench-" + strconv.Itoa(os.Getpid()))
		}
		dir, _ := os.MkdirTemp("", "rtb")
		r, err := New(Config{Root: dir, ShimPath: os.Getenv("SHIM"), Cgroups: cg})
		if err != nil {
			b.Fatal(err)
		}
		var lat []time.Duration
		for i := 0; i < 100; i++ {
			t0 := time.Now()
			c, err := r.Start(context.Background(), ContainerSpec{PodUID: "u" + strconv.Itoa(i), Name: "c", Command: []string{"sleep", "100"}, WorkingDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			r.Stop(context.Background(), c, 0)
			r.RemovePod("u" + strconv.Itoa(i))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.Logf("cgroups=%v p50 %v p99 %v", withCg, lat[50], lat[98])
		os.RemoveAll(dir)
	}
}
