// Command benchdeploy measures a Deployment on real kubelets: the time until
// N replicas with a readiness probe are available, and the time of a full
// rolling update with the default maxSurge/maxUnavailable, each beside the
// theoretical minimum for that setting and probe timing (a zero-latency
// simulation of the rollout rules). It starts a cluster with scripts/up.sh
// (2 kubelets) in a temporary folder and stops it at the end. Run it via
// scripts/bench-deployment.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/kubelite/kubelite/controller-manager/deployment"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scripts/benchutil"
)

func fail(format string, args ...any) { benchutil.Fail("benchdeploy", format, args...) }

func main() {
	replicas := flag.Int("replicas", 100, "replicas")
	readyAfter := flag.Duration("ready-after", 500*time.Millisecond, "each pod's readiness delay after start")
	period := flag.Int("probe-period", 1, "readiness probe periodSeconds")
	keep := flag.Bool("keep", false, "keep the state folder (logs) after stopping the cluster")
	flag.Parse()
	defer benchutil.Cleanup()
	cl := benchutil.StartCluster("benchdeploy", 2, *keep)
	c, err := client.New(cl.APIAddr)
	if err != nil {
		fail("%v", err)
	}
	defer c.Close()
	ctx := context.Background()

	r := int32(*replicas)
	d := &v1.Deployment{Metadata: &v1.ObjectMeta{Name: "bench"}, Spec: &v1.DeploymentSpec{
		Replicas: &r, Selector: &v1.LabelSelector{MatchLabels: map[string]string{"app": "bench"}},
		Template: &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "bench"}}, Spec: &v1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers: []*v1.Container{{Name: "server", Command: []string{"kubelite-app", "--serve", "127.0.0.1:0", "--ready-after", readyAfter.String(), "--every", "1h"},
				Env:            []*v1.EnvVar{{Name: "VERSION", Value: "1"}},
				ReadinessProbe: &v1.Probe{Exec: &v1.ExecAction{Command: []string{"kubelite-app", "--check", "/ready"}}, PeriodSeconds: int32(*period)}}},
		}}}}
	t0 := time.Now()
	created, err := c.Deployments().Create(ctx, d)
	if err != nil {
		fail("create: %v", err)
	}
	waitRolledOut(c, created.Metadata.Generation)
	tCreate := time.Since(t0)
	lastStart, lastReady := breakdown(c, t0)

	t1 := time.Now()
	cur, err := c.Deployments().Get(ctx, "default", "bench")
	if err != nil {
		fail("%v", err)
	}
	cur.Spec.Template.Spec.Containers[0].Env[0].Value = "2"
	upd, err := c.Deployments().Update(ctx, cur)
	if err != nil {
		fail("update: %v", err)
	}
	waitRolledOut(c, upd.Metadata.Generation)
	tUpdate := time.Since(t1)

	probe := time.Duration(*period) * time.Second
	tReady := readyTime(*readyAfter, probe)
	surge, unavail := deployment.ResolveFenceposts(upd)
	minCreate := tReady
	minUpdate := time.Duration(simulateRollingWaves(int(r), int(surge), int(unavail))) * tReady
	fmt.Printf("kubelite deployment benchmark: %d replicas, readiness probe every %v, ready %v after start (a pod is ready %v after it starts);\n", r, probe, *readyAfter, tReady)
	fmt.Printf("2 kubelets, apiserver, scheduler and controller-manager on the same 2 cores\n\n")
	fmt.Printf("create -> all %d available:        %7v   theoretical minimum %v   ratio %.2f\n", r, tCreate.Round(time.Millisecond), minCreate, tCreate.Seconds()/minCreate.Seconds())
	fmt.Printf("rolling update (maxSurge %d, maxUnavailable %d) -> complete: %7v   theoretical minimum %v   ratio %.2f\n",
		surge, unavail, tUpdate.Round(time.Millisecond), minUpdate, tUpdate.Seconds()/minUpdate.Seconds())
	fmt.Printf("  (create: the last container started %v after the create call, the last pod was seen ready %v after it)\n", lastStart.Round(time.Millisecond), lastReady.Round(time.Millisecond))
	fmt.Println("goal: within 1.5x the theoretical minimum")
}

func ptr[T any](v T) *T { return &v }

// readyTime is when a pod that is ready readyAfter its start is seen ready by
// a probe that runs at start and then every period.
func readyTime(readyAfter, period time.Duration) time.Duration {
	n := (readyAfter + period - 1) / period
	return time.Duration(n) * period
}

// simulateRollingWaves plays the rolling update with zero latency: every
// pod becomes available one wave after it is created. It returns the waves
// until the update completes.
func simulateRollingWaves(replicas, surge, unavail int) int {
	oldAvail, oldTotal := replicas, replicas
	newTotal, newAvail := 0, 0
	waves := 0
	for {
		// Controller steps at this instant, until nothing changes.
		for changed := true; changed; {
			changed = false
			if n := min(replicas+surge-(oldTotal+newTotal), replicas-newTotal); n > 0 {
				newTotal += n
				changed = true
			}
			minAvail := replicas - unavail
			// Unavailable old pods go first, then available ones down to the minimum.
			if down := min(oldTotal-oldAvail, oldTotal+newTotal-minAvail-(newTotal-newAvail)); down > 0 {
				oldTotal -= down
				changed = true
			}
			if down := min(oldAvail+newAvail-minAvail, oldTotal); down > 0 {
				oldTotal -= down
				oldAvail -= down
				changed = true
			}
		}
		if newAvail == replicas && oldTotal == 0 {
			return waves
		}
		waves++
		newAvail = newTotal // one wave later the new pods are available
	}
}

// waitRolledOut waits until kubectl's rollout status would say done.
func waitRolledOut(c *client.Client, generation int64) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.Deployments().Get(context.Background(), "default", "bench")
		if err == nil && d.GetStatus().GetObservedGeneration() >= generation {
			st := d.Status
			if st.UpdatedReplicas == d.Spec.GetReplicas() && st.Replicas == st.UpdatedReplicas && st.AvailableReplicas == st.UpdatedReplicas {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("the rollout did not finish within 10 minutes")
}

// breakdown reports when the last container started and the last pod
// turned ready, measured from t0.
func breakdown(c *client.Client, t0 time.Time) (time.Duration, time.Duration) {
	pods, _, err := c.Pods().List(context.Background(), &v1.ListRequest{LabelSelector: "app=bench"})
	if err != nil {
		return 0, 0
	}
	var start, ready time.Duration
	for _, p := range pods {
		for _, cs := range p.GetStatus().GetContainerStatuses() {
			if r := cs.GetState().GetRunning(); r != nil && r.StartedAt != nil {
				start = max(start, r.StartedAt.AsTime().Sub(t0))
			}
		}
		for _, cnd := range p.GetStatus().GetConditions() {
			if cnd.Type == "Ready" && cnd.Status == "True" && cnd.LastTransitionTime != nil {
				ready = max(ready, cnd.LastTransitionTime.AsTime().Sub(t0))
			}
		}
	}
	return start, ready
}
