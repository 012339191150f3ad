// Command benchsts measures why StatefulSet updates are slow: a rolling
// update of a 10-replica StatefulSet for a grid of (SIGTERM honoured or
// ignored with a grace period, readiness delay, maxUnavailable), each
// beside its theoretical minimum: waves x (termination + time to ready),
// with waves = ceil(replicas / maxUnavailable). It starts a cluster with
// scripts/up.sh in a temporary folder and stops it at the end. Run it via
// scripts/bench-statefulset.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scripts/benchutil"
)

func fail(format string, args ...any) { benchutil.Fail("benchsts", format, args...) }

type cell struct {
	ignoreTerm     bool
	readyAfter     time.Duration
	maxUnavailable int
}

func main() {
	replicas := flag.Int("replicas", 10, "replicas")
	grace := flag.Int64("grace", 2, "terminationGracePeriodSeconds")
	flag.Parse()
	defer benchutil.Cleanup()
	cl := benchutil.StartCluster("benchsts", 2, false)
	c, err := client.New(cl.APIAddr)
	if err != nil {
		fail("%v", err)
	}
	defer c.Close()

	fmt.Printf("kubelite StatefulSet rolling update benchmark: %d replicas, grace %ds, readiness probe every 1s, 2 kubelets on 2 cores\n\n", *replicas, *grace)
	fmt.Printf("%-9s %-11s %-15s %10s %12s %7s\n", "SIGTERM", "ready after", "maxUnavailable", "update", "theoretical", "ratio")
	i := 0
	for _, ignore := range []bool{false, true} {
		for _, ready := range []time.Duration{0, 2 * time.Second} {
			for _, mu := range []int{1, 3} {
				i++
				took := measure(c, fmt.Sprintf("s%d", i), *replicas, *grace, cell{ignore, ready, mu})
				term := time.Duration(0)
				if ignore {
					term = time.Duration(*grace) * time.Second
				}
				readyT := time.Duration(0)
				if ready > 0 {
					readyT = (ready + time.Second - 1) / time.Second * time.Second
				}
				waves := (*replicas + mu - 1) / mu
				min := time.Duration(waves) * (term + readyT)
				ratio := "-"
				if min > 0 {
					ratio = fmt.Sprintf("%.2f", took.Seconds()/min.Seconds())
				}
				how := "honoured"
				if ignore {
					how = "ignored"
				}
				fmt.Printf("%-9s %-11v %-15d %10v %12v %7s\n", how, ready, mu, took.Round(10*time.Millisecond), min, ratio)
			}
		}
	}
	fmt.Println("\ntheoretical = ceil(replicas/maxUnavailable) x (termination + time to ready); no data is copied: each ordinal's folder is reused")
}

// measure creates a set, waits until it runs, changes its template and
// times the rolling update to completion; then deletes the set.
func measure(c *client.Client, name string, replicas int, grace int64, cl cell) time.Duration {
	ctx := context.Background()
	r := int32(replicas)
	mu := strconv.Itoa(cl.maxUnavailable)
	args := []string{"kubelite-app", "--serve", "127.0.0.1:0", "--ready-after", cl.readyAfter.String(), "--every", "1h"}
	if cl.ignoreTerm {
		args = append(args, "--on-term", "ignore")
	}
	s := &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.StatefulSetSpec{
		Replicas: &r, ServiceName: name, PodManagementPolicy: "Parallel",
		Selector:       &v1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		UpdateStrategy: &v1.StatefulSetUpdateStrategy{Type: "RollingUpdate", RollingUpdate: &v1.RollingUpdateStatefulSetStrategy{MaxUnavailable: mu}},
		Template: &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: &v1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []*v1.Container{{Name: "c", Command: args, Env: []*v1.EnvVar{{Name: "VERSION", Value: "1"}},
				ReadinessProbe: &v1.Probe{Exec: &v1.ExecAction{Command: []string{"kubelite-app", "--check", "/ready"}}, PeriodSeconds: 1, TimeoutSeconds: 5}}}}}}}
	if _, err := c.StatefulSets().Create(ctx, s); err != nil {
		fail("create %s: %v", name, err)
	}
	waitDone(c, name, replicas)
	cur, err := c.StatefulSets().Get(ctx, "default", name)
	if err != nil {
		fail("%v", err)
	}
	cur.Spec.Template.Spec.Containers[0].Env[0].Value = "2"
	start := time.Now()
	if _, err := c.StatefulSets().Update(ctx, cur); err != nil {
		fail("update %s: %v", name, err)
	}
	waitDone(c, name, replicas)
	took := time.Since(start)
	if _, err := c.StatefulSets().Delete(ctx, "default", name, nil); err != nil {
		fail("delete: %v", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pods, _, _ := c.Pods().List(ctx, &v1.ListRequest{LabelSelector: "app=" + name})
		if len(pods) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return took
}

// waitDone waits until every replica is ready at the update revision.
func waitDone(c *client.Client, name string, replicas int) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		s, err := c.StatefulSets().Get(context.Background(), "default", name)
		if err == nil && s.Status != nil && s.Status.ObservedGeneration >= s.Metadata.Generation {
			st := s.Status
			if int(st.ReadyReplicas) == replicas && int(st.UpdatedReplicas) == replicas && st.CurrentRevision == st.UpdateRevision {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("statefulset %s did not finish within 5 minutes", name)
}
