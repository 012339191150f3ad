package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/record"
	"github.com/kubelite/kubelite/kubelet/prober"
	"github.com/kubelite/kubelite/kubelet/runtime"
	"github.com/kubelite/kubelite/kubelet/status"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// podWorker drives one pod: starts and restarts its containers, probes
// them, stops them on deletion and reports status. Its sync runs on one
// goroutine; update, removed and poke wake it.
type podWorker struct {
	k   *Kubelet
	uid string

	wakeCh chan struct{}

	mu        sync.Mutex // guards pod, gone and forceStop
	pod       *v1.Pod
	gone      bool               // the pod left the API (force-deleted or finished)
	forceStop context.CancelFunc // cuts a graceful termination short

	// Owned by the worker goroutine.
	startTime  time.Time
	backoff    map[string]*backoff
	startErr   map[string]string
	probes     map[string]*probeSet
	noted      map[string]int // container -> the last attempt whose exit was reported
	terminal   bool           // reached Succeeded/Failed: nothing restarts
	reason     string         // pod status reason (DeadlineExceeded)
	message    string
	lastStatus *v1.PodStatus

	// Claims (claims.go): mounted once before the first container starts.
	claimsMounted  bool
	claimRetry     time.Time     // no new try before this
	claimWait      time.Duration // the last wait between tries
	claimEvent     atomic.Bool   // a claim the pod names changed: try now
	claimEventOnly bool          // no timer: only a claim event makes the next try
	claimsChecked  atomic.Bool   // mountClaims ran once (read by podUsesClaim)
	claimsInUse    atomic.Bool   // claims mounted or containers started: folders in use
}

// backoff is one container's CrashLoopBackOff state.
type backoff struct {
	restarts int       // restarts since the last reset
	until    time.Time // no start before this
	noted    int       // the attempt whose BackOff event was sent
}

// probeSet holds one container attempt's probe results.
type probeSet struct {
	attempt int
	cancel  context.CancelFunc

	mu      sync.Mutex // guards the fields below
	ready   bool
	started bool
	unwell  string // set when liveness or startup failed: kill reason
}

func newPodWorker(k *Kubelet, p *v1.Pod) *podWorker {
	return &podWorker{k: k, uid: p.Metadata.Uid, pod: p, wakeCh: make(chan struct{}, 1),
		backoff: map[string]*backoff{}, startErr: map[string]string{}, probes: map[string]*probeSet{}, noted: map[string]int{}}
}

func (w *podWorker) poke() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

func (w *podWorker) update(p *v1.Pod) {
	w.mu.Lock()
	w.pod = p
	w.mu.Unlock()
	w.poke()
}

// removed: the pod is gone from the API. If it was force-deleted while
// its containers run, they are killed at once.
func (w *podWorker) removed() {
	w.mu.Lock()
	w.gone = true
	if w.forceStop != nil {
		w.forceStop()
	}
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) snapshot() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone
}

func (w *podWorker) run(ctx context.Context) {
	terminated := false
	defer func() { w.k.forget(w.uid, terminated) }()
	for {
		next, done := w.sync(ctx)
		if done {
			w.stopProbes()
			_, gone := w.snapshot()
			terminated = !gone
			return
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(max(time.Until(next), time.Millisecond))
			timer = t.C
		}
		select {
		case <-ctx.Done():
			w.stopProbes()
			return
		case <-w.wakeCh:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (w *podWorker) podName(p *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", p.Metadata.Name, p.Metadata.Namespace, p.Metadata.Uid)
}

// sync does one round of work; it returns when to run again (zero: when
// woken) and whether the worker is finished.
func (w *podWorker) sync(ctx context.Context) (time.Time, bool) {
	pod, gone := w.snapshot()
	rt := w.k.rt
	if gone {
		// Force-deleted (or deleted after we finished): nothing may run.
		w.stopAll(ctx, pod, 0)
		if err := rt.RemovePod(w.uid); err != nil {
			slog.Warn("cannot remove pod folder", "pod", w.podName(pod), "err", err)
		}
		return time.Time{}, true
	}
	if pod.Metadata.DeletionTimestamp != nil {
		w.terminate(ctx, pod)
		return time.Time{}, true
	}
	now := time.Now()
	if w.startTime.IsZero() {
		w.startTime = now
		if st := pod.GetStatus().GetStartTime(); st != nil {
			w.startTime = st.AsTime()
		}
		_ = os.MkdirAll(rt.PodDir(w.uid), 0o755)
	}
	if status.IsTerminal(pod.GetStatus().GetPhase()) {
		w.terminal = true
	}
	var next time.Time
	grace := podGrace(pod)
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && !w.terminal {
		deadline := w.startTime.Add(api.SecondsToDuration(*d))
		if !now.Before(deadline) {
			w.reason, w.message = "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
			w.k.rec.Eventf(pod, record.Warning, "DeadlineExceeded", "%s", w.message)
			w.stopAll(ctx, pod, grace)
			w.terminal = true
		} else {
			next = deadline
		}
	}
	views := map[string]status.Container{}
	mounted, retry := w.mountClaims(ctx, pod, now)
	if !retry.IsZero() && (next.IsZero() || retry.Before(next)) {
		next = retry
	}
	for _, c := range pod.Spec.Containers {
		if mounted {
			at := w.syncContainer(ctx, pod, c, now, grace)
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		views[c.Name] = w.view(pod, c, now)
	}
	st := status.ComputePodStatus(status.Input{Pod: pod, Containers: views, HostIP: w.k.cfg.NodeIP, StartTime: w.startTime,
		Now: now, Terminal: w.terminal && w.reason != "", Failed: w.reason == "DeadlineExceeded", Reason: w.reason, Message: w.message})
	if status.IsTerminal(st.Phase) {
		w.terminal = true
		w.stopProbes()
	}
	w.lastStatus = st
	w.k.status.Set(pod, st)
	return next, false
}

func (w *podWorker) current(name string) *runtime.Container {
	at := w.k.rt.Attempts(w.uid, name)
	if len(at) == 0 {
		return nil
	}
	return at[len(at)-1]
}

func podGrace(pod *v1.Pod) time.Duration {
	if g := pod.Metadata.DeletionGracePeriodSeconds; g != nil {
		return api.SecondsToDuration(*g)
	}
	return api.SecondsToDuration(pod.Spec.GetTerminationGracePeriodSeconds())
}

// shouldRestart applies restartPolicy to an exit.
func shouldRestart(policy string, code int) bool {
	switch policy {
	case "Always":
		return true
	case "OnFailure":
		return code != 0
	}
	return false
}

// syncContainer starts, restarts or kills one container; it returns when
// it next needs attention (end of a back-off).
func (w *podWorker) syncContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, now time.Time, grace time.Duration) time.Time {
	cur := w.current(c.Name)
	if cur != nil {
		if _, done := cur.Exited(); !done {
			if w.terminal {
				w.k.rec.Eventf(pod, record.Normal, "Killing", "Stopping container %s", c.Name)
				w.k.rt.Stop(ctx, cur, grace)
			} else if ps := w.probes[c.Name]; ps != nil && ps.attempt == cur.Attempt {
				ps.mu.Lock()
				unwell := ps.unwell
				ps.mu.Unlock()
				if unwell != "" {
					w.k.rec.Eventf(pod, record.Normal, "Killing", "Container %s %s, will be restarted", c.Name, unwell)
					w.k.rt.Stop(ctx, cur, grace)
				}
			} else {
				w.startProbes(pod, c, cur)
			}
			if _, done := cur.Exited(); !done {
				return time.Time{}
			}
		}
		w.stopProbe(c.Name)
		exit, _ := cur.Exited()
		if n, ok := w.noted[c.Name]; !ok || n < cur.Attempt {
			w.noted[c.Name] = cur.Attempt
			if exit.OOMKilled {
				w.k.rec.Eventf(pod, record.Warning, "OOMKilling", "Memory cgroup out of memory: killed process %d of container %s (limit %s)", cur.Pid, c.Name, c.GetResources().GetLimits()["memory"])
			}
		}
		if w.terminal || !shouldRestart(pod.Spec.RestartPolicy, exit.Code) {
			return time.Time{}
		}
	}
	if w.terminal {
		return time.Time{}
	}
	b := w.backoff[c.Name]
	if b == nil {
		b = &backoff{noted: -1}
		w.backoff[c.Name] = b
	}
	if cur != nil {
		exit, _ := cur.Exited()
		if b.until.IsZero() || b.until.Before(cur.StartedAt) {
			// First look at this exit: the delay counts from it.
			b.until, b.restarts = crashLoopUntil(b.restarts, cur.StartedAt, exit.FinishedAt, w.k.cfg.BackOffBase, w.k.cfg.BackOffMax)
		}
		if now.Before(b.until) {
			if b.noted != cur.Attempt {
				b.noted = cur.Attempt
				w.k.rec.Eventf(pod, record.Warning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, w.podName(pod))
			}
			return b.until
		}
	} else if w.startErr[c.Name] != "" && now.Before(b.until) {
		return b.until
	}
	w.start(ctx, pod, c, b)
	return time.Time{}
}

// start starts a container's next attempt and records events.
func (w *podWorker) start(ctx context.Context, pod *v1.Pod, c *v1.Container, b *backoff) {
	spec, err := w.containerSpec(pod, c)
	if err == nil {
		var cur *runtime.Container
		t0 := time.Now()
		cur, err = w.k.rt.Start(ctx, spec)
		if err == nil {
			slog.Debug("container started", "pod", w.podName(pod), "container", c.Name, "attempt", cur.Attempt,
				"since_create", t0.Sub(pod.Metadata.CreationTimestamp.AsTime()), "start_took", time.Since(t0))
			delete(w.startErr, c.Name)
			if cur.Attempt > 0 {
				b.restarts++
			}
			w.k.rec.Eventf(pod, record.Normal, "Created", "Created container %s", c.Name)
			w.k.rec.Eventf(pod, record.Normal, "Started", "Started container %s", c.Name)
			w.startProbes(pod, c, cur)
			return
		}
	}
	w.startErr[c.Name] = err.Error()
	b.restarts++
	b.until = time.Now().Add(crashLoopDelay(b.restarts, w.k.cfg.BackOffBase, w.k.cfg.BackOffMax))
	w.k.rec.Eventf(pod, record.Warning, "Failed", "Error: %s", err.Error())
	slog.Warn("cannot start container", "pod", w.podName(pod), "container", c.Name, "err", err)
}

// containerSpec resolves env, working directory and limits.
func (w *podWorker) containerSpec(pod *v1.Pod, c *v1.Container) (runtime.ContainerSpec, error) {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOSTNAME=" + pod.Metadata.Name,
		"POD_NAME=" + pod.Metadata.Name,
		"POD_NAMESPACE=" + pod.Metadata.Namespace,
		"POD_UID=" + pod.Metadata.Uid,
		"NODE_NAME=" + w.k.cfg.NodeName,
	}
	vars := map[string]string{}
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
		vars[e.Name] = e.Value
	}
	mounts, err := w.volumes(pod, c)
	if err != nil {
		return runtime.ContainerSpec{}, err
	}
	for name, path := range mounts {
		k := "VOLUME_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		env = append(env, k+"="+path)
		vars[k] = path
	}
	dir := c.WorkingDir
	if dir == "" {
		dir = w.k.rt.PodDir(w.uid)
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(w.k.rt.PodDir(w.uid), dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runtime.ContainerSpec{}, fmt.Errorf("working directory %s: %w", dir, err)
	}
	var command []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		command = append(command, expandVars(a, vars))
	}
	spec := runtime.ContainerSpec{PodUID: w.uid, Name: c.Name, Command: command, Env: env, WorkingDir: dir}
	if v, ok := c.GetResources().GetLimits()["memory"]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return spec, fmt.Errorf("limits.memory %q: %w", v, err)
		}
		spec.MemoryLimit = q.Value()
	}
	if v, ok := c.GetResources().GetLimits()["cpu"]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return spec, fmt.Errorf("limits.cpu %q: %w", v, err)
		}
		spec.CPULimit = q.MilliValue()
	}
	return spec, nil
}

func (w *podWorker) probeTarget(pod *v1.Pod, c *v1.Container) prober.Target {
	spec, _ := w.containerSpec(pod, c)
	return prober.Target{Host: w.k.cfg.NodeIP, Env: spec.Env, WorkingDir: spec.WorkingDir, Ports: c.Ports}
}

// startProbes starts the probes of one container attempt.
func (w *podWorker) startProbes(pod *v1.Pod, c *v1.Container, cur *runtime.Container) {
	w.stopProbe(c.Name)
	ctx, cancel := context.WithCancel(w.k.ctx)
	ps := &probeSet{attempt: cur.Attempt, cancel: cancel, ready: c.ReadinessProbe == nil, started: c.StartupProbe == nil}
	w.probes[c.Name] = ps
	target := w.probeTarget(pod, c)
	startedGate := func() bool { ps.mu.Lock(); defer ps.mu.Unlock(); return ps.started }
	unhealthy := func(kind prober.Kind) func(string) {
		return func(msg string) {
			w.k.rec.Eventf(pod, record.Warning, "Unhealthy", "%s probe failed: %s", kind, msg)
		}
	}
	set := func(f func()) { ps.mu.Lock(); f(); ps.mu.Unlock(); w.poke() }
	if c.StartupProbe != nil {
		wk := &prober.Worker{Kind: prober.Startup, Probe: c.StartupProbe, Target: target, Fail: unhealthy(prober.Startup),
			Report: func(ok bool) {
				set(func() {
					if ok {
						ps.started = true
					} else {
						ps.unwell = "failed startup probe"
					}
				})
			}}
		wkCtx, stop := context.WithCancel(ctx)
		go func() { wk.Run(wkCtx) }()
		// The startup probe ends once it has succeeded.
		go func() {
			for !startedGate() {
				select {
				case <-wkCtx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			stop()
		}()
	}
	if c.LivenessProbe != nil {
		wk := &prober.Worker{Kind: prober.Liveness, Probe: c.LivenessProbe, Target: target, Gate: startedGate, Fail: unhealthy(prober.Liveness),
			Report: func(ok bool) {
				if !ok {
					set(func() { ps.unwell = "failed liveness probe" })
				}
			}}
		go wk.Run(ctx)
	}
	if c.ReadinessProbe != nil {
		wk := &prober.Worker{Kind: prober.Readiness, Probe: c.ReadinessProbe, Target: target, Gate: startedGate, Fail: unhealthy(prober.Readiness),
			Report: func(ok bool) { set(func() { ps.ready = ok }) }}
		go wk.Run(ctx)
	}
}

func (w *podWorker) stopProbe(name string) {
	if ps := w.probes[name]; ps != nil {
		ps.cancel()
		delete(w.probes, name)
	}
}

func (w *podWorker) stopProbes() {
	for name := range w.probes {
		w.stopProbe(name)
	}
}

func toAttempt(c *runtime.Container) *status.Attempt {
	if c == nil {
		return nil
	}
	a := &status.Attempt{ID: fmt.Sprintf("kubelite://%s/%s/%d", c.PodUID, c.Name, c.Attempt), StartedAt: c.StartedAt}
	if e, done := c.Exited(); done {
		a.Exited, a.ExitCode, a.Signal, a.OOMKilled, a.FinishedAt = true, int32(e.Code), int32(e.Signal), e.OOMKilled, e.FinishedAt
	}
	return a
}

// view is what the status needs to know of one container.
func (w *podWorker) view(pod *v1.Pod, c *v1.Container, now time.Time) status.Container {
	at := w.k.rt.Attempts(w.uid, c.Name)
	v := status.Container{}
	if n := len(at); n > 0 {
		v.Current = toAttempt(at[n-1])
		v.Restarts = int32(n - 1)
		if n > 1 {
			v.Previous = toAttempt(at[n-2])
		}
	}
	if ps := w.probes[c.Name]; ps != nil && v.Current != nil && !v.Current.Exited {
		ps.mu.Lock()
		v.Ready, v.Started = ps.ready && ps.started, ps.started
		ps.mu.Unlock()
	}
	if msg := w.startErr[c.Name]; msg != "" {
		v.WaitingReason, v.WaitingMessage = "RunContainerError", msg
		if v.Current != nil && v.Current.Exited {
			v.WaitingReason = "CrashLoopBackOff"
		}
		return v
	}
	if v.Current != nil && v.Current.Exited && !w.terminal && shouldRestart(pod.Spec.RestartPolicy, int(v.Current.ExitCode)) {
		if b := w.backoff[c.Name]; b != nil && now.Before(b.until) {
			v.WaitingReason = "CrashLoopBackOff"
			v.WaitingMessage = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", b.until.Sub(v.Current.FinishedAt).Round(time.Second), c.Name, w.podName(pod))
		}
	}
	return v
}

// stopAll stops every running container with the grace period.
func (w *podWorker) stopAll(ctx context.Context, pod *v1.Pod, grace time.Duration) {
	w.eachRunning(pod, func(c *v1.Container, cur *runtime.Container) {
		w.k.rt.Stop(ctx, cur, grace)
	})
	w.stopProbes()
}

// eachRunning runs stop, in parallel, for every running container of the
// pod (after the Killing event) and waits for all of them.
func (w *podWorker) eachRunning(pod *v1.Pod, stop func(c *v1.Container, cur *runtime.Container)) {
	var wg sync.WaitGroup
	for _, c := range pod.Spec.Containers {
		cur := w.current(c.Name)
		if cur == nil {
			continue
		}
		if _, done := cur.Exited(); done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.k.rec.Eventf(pod, record.Normal, "Killing", "Stopping container %s", c.Name)
			stop(c, cur)
		}()
	}
	wg.Wait()
}

// minStopGrace is the least time a container gets after its preStop hook
// before SIGKILL when it had a grace period (Kubernetes: 2 s).
const minStopGrace = 2 * time.Second

// terminate is graceful deletion (reference §3): preStop hooks (their time
// counts against the grace), SIGTERM, SIGKILL after the grace; then the
// terminal status, then the final delete with grace 0 and a uid precondition.
func (w *podWorker) terminate(ctx context.Context, pod *v1.Pod) {
	grace := podGrace(pod)
	deadline := time.Now().Add(grace)
	tctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.forceStop = cancel
	gone := w.gone
	w.mu.Unlock()
	defer cancel()
	if gone {
		cancel()
	}
	w.stopProbes()
	w.eachRunning(pod, func(c *v1.Container, cur *runtime.Container) {
		if h := c.GetLifecycle().GetPreStop(); h != nil && grace > 0 && tctx.Err() == nil {
			hctx, hcancel := context.WithDeadline(tctx, deadline)
			var ok bool
			var msg string
			if h.Sleep != nil {
				select {
				case <-time.After(api.SecondsToDuration(h.Sleep.Seconds)):
					ok = true
				case <-hctx.Done():
				}
			} else {
				ok, msg = prober.Action(hctx, w.probeTarget(pod, c), h.Exec, h.HttpGet, h.TcpSocket, max(time.Until(deadline), time.Millisecond))
			}
			hcancel()
			if !ok && msg != "" {
				w.k.rec.Eventf(pod, record.Warning, "FailedPreStopHook", "PreStop hook for container %s failed: %s", c.Name, msg)
			}
		}
		left := time.Until(deadline)
		if grace > 0 && left < minStopGrace {
			left = minStopGrace
		}
		if grace == 0 || tctx.Err() != nil {
			left = 0
		}
		w.k.rt.Stop(tctx, cur, left)
	})

	// The terminal phase from the exit codes, before the object goes.
	views := map[string]status.Container{}
	for _, c := range pod.Spec.Containers {
		views[c.Name] = w.view(pod, c, time.Now())
	}
	w.terminal = true
	st := status.ComputePodStatus(status.Input{Pod: pod, Containers: views, HostIP: w.k.cfg.NodeIP, StartTime: w.startTime, Now: time.Now(), Terminal: true})
	if !w.finalDelete(ctx, pod, st) {
		return // the kubelet stops; the next one finishes the job
	}
	if err := w.k.rt.RemovePod(w.uid); err != nil {
		slog.Warn("cannot remove pod folder", "pod", w.podName(pod), "err", err)
	}
	slog.Info("pod terminated", "pod", w.podName(pod), "phase", st.Phase)
}

// finalDeleteBackoff paces the retries of the final delete: an apiserver
// that is down or restarting must not leave the pod Terminating for good.
var finalDeleteBackoff = wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 5 * time.Second}

// finalDeleteWarnEvery is how often a failing final delete warns again.
var finalDeleteWarnEvery = time.Minute

// logLimiter logs a warning at most once per period; the others go to the
// debug level, and the next warning counts them.
type logLimiter struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

func (l *logLimiter) log(msg string, args ...any) {
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		slog.Debug(msg, args...)
		return
	}
	if l.suppressed > 0 {
		args = append(args, "repeated", l.suppressed)
	}
	l.last, l.suppressed = now, 0
	slog.Warn(msg, args...)
}

// finalDelete writes the terminal status, then deletes the pod with grace
// 0 and a uid precondition, as Kubernetes' status manager does once the
// containers are stopped. It retries, with capped back-off, until the
// apiserver confirms: the pod is gone (NotFound), its name holds another
// pod (the uid precondition fails), or only finalizers hold it. It returns
// false if ctx ended first (the kubelet stops; its successor sees the pod
// Terminating with nothing running and deletes it).
func (w *podWorker) finalDelete(ctx context.Context, pod *v1.Pod, st *v1.PodStatus) bool {
	zero := int64(0)
	uid := pod.Metadata.Uid
	opts := &v1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &v1.Preconditions{Uid: &uid}}
	bo := finalDeleteBackoff
	statusWritten := false
	// An error that will not go away (InvalidArgument, PermissionDenied) is
	// retried for as long as the pod lives, as Kubernetes' status manager
	// does; its warning is logged at the first failure, then once a minute.
	statusWarn, deleteWarn := logLimiter{every: finalDeleteWarnEvery}, logLimiter{every: finalDeleteWarnEvery}
	for attempt := 1; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if !statusWritten {
			err := w.k.status.Write(wctx, pod, st)
			switch {
			case err == nil:
				statusWritten = true
			case client.IsNotFound(err) || client.IsConflict(err):
				cancel()
				return true // gone, or the name holds another pod
			default:
				// Still try the delete: the pod going matters more than
				// its last status.
				statusWarn.log("cannot write the final pod status", "pod", w.podName(pod), "attempt", attempt, "err", client.Message(err))
			}
		}
		_, err := w.k.c.Pods().Delete(wctx, pod.Metadata.Namespace, pod.Metadata.Name, opts)
		cancel()
		if err == nil || client.IsNotFound(err) || client.IsConflict(err) {
			return true
		}
		delay := bo.Step()
		deleteWarn.log("cannot delete the pod after stopping it; will retry", "pod", w.podName(pod), "attempt", attempt, "retry_in", delay, "err", client.Message(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-w.wakeCh: // the pod changed, or left the API
		case <-t.C:
		}
		t.Stop()
		if _, gone := w.snapshot(); gone {
			return true
		}
	}
}

// volumes prepares the pod's volumes a container mounts and returns mount
// name -> folder. persistentVolumeClaim folders live under VolumeDir and
// outlive the pod; emptyDir lives in the pod folder; hostPath is the path.
// Each mount also appears as a link at <pod folder>/<mountPath>.
func (w *podWorker) volumes(pod *v1.Pod, c *v1.Container) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range c.VolumeMounts {
		var dir string
		claim := false
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.PersistentVolumeClaim != nil:
				var err error
				if dir, err = ClaimDir(w.k.cfg.VolumeDir, pod.Metadata.Namespace, v.PersistentVolumeClaim.ClaimName); err != nil {
					return nil, fmt.Errorf("volume %s: %w", m.Name, err)
				}
				claim = true
			case v.HostPath != nil:
				dir = v.HostPath.Path
			default:
				dir = filepath.Join(w.k.rt.PodDir(w.uid), "volumes", v.Name)
			}
		}
		if dir == "" {
			return nil, fmt.Errorf("volumeMount %q names no volume of the pod", m.Name)
		}
		if claim {
			// A claim's folder is made only by binding (claims.go), once
			// the claim carries the finalizer that removes it.
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("volume %s: the folder of persistentvolumeclaim %s is not made yet (the claim is not bound)", m.Name, filepath.Base(dir))
			}
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("volume %s: %w", m.Name, err)
		}
		link := filepath.Join(w.k.rt.PodDir(w.uid), strings.TrimPrefix(filepath.Clean("/"+m.MountPath), "/"))
		if link != w.k.rt.PodDir(w.uid) {
			_ = os.MkdirAll(filepath.Dir(link), 0o755)
			if cur, err := os.Readlink(link); err != nil || cur != dir {
				_ = os.Remove(link)
				if err := os.Symlink(dir, link); err != nil {
					return nil, fmt.Errorf("volume %s at %s: %w", m.Name, m.MountPath, err)
				}
			}
		}
		out[m.Name] = dir
	}
	return out, nil
}

// expandVars replaces $(NAME) with the container's variable, as Kubernetes
// does in command and args; $$(NAME) escapes, unknown names stay.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$(") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '(' {
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				name := s[i+2 : i+end]
				if v, ok := vars[name]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
