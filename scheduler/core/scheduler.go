// Package core is the scheduler: an informer cache of nodes and pods, the
// scheduling queue, the filter/score cycle over framework's plugins,
// assumed pods so that placements count at once, and asynchronous binding.
package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/leaderelection"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
	"github.com/kubelite/kubelite/scheduler/framework"
)

// Config is the scheduler's configuration.
type Config struct {
	APIServer     string
	SchedulerName string // pods with this spec.schedulerName are ours
	Identity      string // for leader election

	LeaderElect   bool
	LeaseName     string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	BackoffInitial   time.Duration // 1 s
	BackoffMax       time.Duration // 10 s
	MaxUnschedulable time.Duration // 5 min: parked pods are retried at least this often
	BindWorkers      int
	MetricsAddr      string

	// Observe, if set, is told of every bound pod (benchmarks).
	Observe func(pod *v1.Pod, node string, queued, popped, bound time.Time)
}

// Validate checks the configuration and names the flag at fault.
func (c *Config) Validate() error {
	switch {
	case c.APIServer == "":
		return errors.New("--apiserver: required")
	case c.SchedulerName == "":
		return errors.New("--scheduler-name: required")
	case c.BackoffInitial <= 0 || c.BackoffMax < c.BackoffInitial:
		return fmt.Errorf("--pod-initial-backoff %v must be positive and at most --pod-max-backoff %v", c.BackoffInitial, c.BackoffMax)
	case c.BindWorkers <= 0:
		return fmt.Errorf("--bind-workers %d: must be positive", c.BindWorkers)
	}
	return nil
}

// placed is a pod the cache accounts on a node.
type placed struct {
	node    string
	info    *framework.PodInfo
	assumed bool // placed by us, not yet seen bound
}

// Scheduler places pods on nodes.
type Scheduler struct {
	cfg   Config
	c     *client.Client
	rec   *record.Recorder
	queue *queue
	pods  *client.Informer[*v1.Pod]
	nodes *client.Informer[*v1.Node]
	m     *metrics

	mu        sync.Mutex // guards the cache below
	nodeInfos map[string]*framework.NodeInfo
	badNodes  map[string]string // node -> why its capacity is unusable
	order     []string          // node names, sorted; rebuilt when dirty
	dirty     bool
	placed    map[string]*placed // pod uid -> placement
	nextStart int

	binds chan bindJob
	rng   *rand.Rand
}

type bindJob struct {
	pod            *v1.Pod
	node           string
	queued, popped time.Time
}

// Run runs the scheduler until ctx ends (or, with leader election, until
// leadership is lost: an error).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c, err := client.New(cfg.APIServer)
	if err != nil {
		return err
	}
	defer c.Close()
	m := newMetrics()
	if cfg.MetricsAddr != "" {
		if err := serveMetrics(ctx, cfg.MetricsAddr, m.reg); err != nil {
			return err
		}
	}
	run := func(ctx context.Context) { newScheduler(cfg, c, m).run(ctx) }
	if !cfg.LeaderElect {
		run(ctx)
		return nil
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	el, err := leaderelection.New(leaderelection.Config{
		Client: c, Namespace: "kube-system", Name: cfg.LeaseName, Identity: cfg.Identity,
		LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
		OnStartedLeading: run,
		OnNewLeader:      func(id string) { slog.Info("scheduler leader", "identity", id) },
	})
	if err != nil {
		return err
	}
	return el.Run(ctx)
}

func newScheduler(cfg Config, c *client.Client, m *metrics) *Scheduler {
	return &Scheduler{
		cfg: cfg, c: c, m: m,
		rec:       record.New(c, cfg.SchedulerName, ""),
		queue:     newQueue(cfg.BackoffInitial, cfg.BackoffMax, cfg.MaxUnschedulable),
		pods:      client.NewInformer(c.Pods(), nil),
		nodes:     client.NewInformer(c.Nodes(), nil),
		nodeInfos: map[string]*framework.NodeInfo{},
		badNodes:  map[string]string{},
		placed:    map[string]*placed{},
		// As many in flight as there are binders: the cycle waits for a free
		// binder rather than queueing pods where no one sees them.
		binds: make(chan bindJob, cfg.BindWorkers),
		rng:   rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
	}
}

func (s *Scheduler) run(ctx context.Context) {
	slog.Info("scheduler starting", "name", s.cfg.SchedulerName)
	go s.rec.Run(ctx)
	s.nodes.AddHandler(client.Handler[*v1.Node]{
		OnAdd:    func(n *v1.Node) { s.setNode(n); s.queue.MoveAllToActive() },
		OnUpdate: func(_, n *v1.Node) { s.setNode(n); s.queue.MoveAllToActive() },
		OnDelete: func(n *v1.Node) { s.removeNode(n.Metadata.Name) },
	})
	s.pods.AddHandler(client.Handler[*v1.Pod]{
		OnAdd:    s.podChanged,
		OnUpdate: func(_, p *v1.Pod) { s.podChanged(p) },
		OnDelete: s.podDeleted,
	})
	go s.nodes.Run(ctx)
	go s.pods.Run(ctx)
	if !s.nodes.WaitForSync(ctx) || !s.pods.WaitForSync(ctx) {
		return
	}
	go s.queue.run(ctx, 200*time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.BindWorkers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.bindWorker(ctx) }()
	}
	go s.reportQueue(ctx)
	slog.Info("scheduler ready")
	for {
		key, queued, ok := s.queue.Pop()
		if !ok {
			break
		}
		s.scheduleOne(ctx, key, queued)
	}
	wg.Wait()
}

// setNode updates a node in the cache; malformed capacity makes it unusable.
func (s *Scheduler) setNode(n *v1.Node) {
	name := n.Metadata.Name
	alloc, err := framework.ParseAllocatable(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.badNodes[name] != err.Error() {
			slog.Warn("skipping node with malformed capacity", "node", name, "reason", err.Error())
		}
		s.badNodes[name] = err.Error()
	} else {
		delete(s.badNodes, name)
	}
	ni, ok := s.nodeInfos[name]
	if !ok {
		ni = &framework.NodeInfo{}
		s.nodeInfos[name] = ni
		s.dirty = true
	}
	ni.Node, ni.Allocatable = n, alloc
}

func (s *Scheduler) removeNode(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodeInfos, name)
	delete(s.badNodes, name)
	s.dirty = true
}

// podChanged keeps the cache's accounting and the queue in step with a pod.
func (s *Scheduler) podChanged(p *v1.Pod) {
	key := api.NamespacedName(p)
	uid := p.Metadata.Uid
	node := p.GetSpec().GetNodeName()
	switch {
	case node != "" && !api.IsPodTerminal(p):
		s.queue.Delete(key)
		s.mu.Lock()
		if pl, ok := s.placed[uid]; ok {
			pl.assumed = false // confirmed
			if pl.node != node {
				s.unaccount(pl)
				s.account(uid, node, framework.NewPodInfo(p), false)
			}
		} else {
			s.account(uid, node, framework.NewPodInfo(p), false)
		}
		s.mu.Unlock()
	case node != "":
		// Terminal pods free their node's resources.
		s.mu.Lock()
		if pl, ok := s.placed[uid]; ok {
			s.unaccount(pl)
			delete(s.placed, uid)
		}
		s.mu.Unlock()
		s.queue.MoveAllToActive()
	case p.Metadata.DeletionTimestamp == nil && p.GetSpec().GetSchedulerName() == s.cfg.SchedulerName:
		s.mu.Lock()
		_, assumed := s.placed[uid]
		s.mu.Unlock()
		if !assumed {
			s.queue.Add(key)
		}
	default:
		s.queue.Delete(key)
	}
}

func (s *Scheduler) podDeleted(p *v1.Pod) {
	s.queue.Delete(api.NamespacedName(p))
	s.mu.Lock()
	pl, ok := s.placed[p.Metadata.Uid]
	if ok {
		s.unaccount(pl)
		delete(s.placed, p.Metadata.Uid)
	}
	s.mu.Unlock()
	if ok {
		s.queue.MoveAllToActive()
	}
}

// account and unaccount need s.mu.
func (s *Scheduler) account(uid, node string, pi *framework.PodInfo, assumed bool) {
	s.placed[uid] = &placed{node: node, info: pi, assumed: assumed}
	if ni, ok := s.nodeInfos[node]; ok {
		ni.AddPod(pi)
	}
}

func (s *Scheduler) unaccount(pl *placed) {
	if ni, ok := s.nodeInfos[pl.node]; ok {
		ni.RemovePod(pl.info)
	}
}

// scheduleOne runs one scheduling cycle for a pod.
func (s *Scheduler) scheduleOne(ctx context.Context, key string, queued time.Time) {
	popped := time.Now()
	pod, ok := s.pods.Get(key)
	if !ok || pod.GetSpec().GetNodeName() != "" || pod.Metadata.DeletionTimestamp != nil {
		s.queue.Done(key)
		return
	}
	pi := framework.NewPodInfo(pod)
	s.mu.Lock()
	if s.dirty {
		s.order = s.order[:0]
		for name := range s.nodeInfos {
			s.order = append(s.order, name)
		}
		sort.Strings(s.order)
		s.dirty = false
	}
	n := len(s.order)
	want := framework.NumFeasibleNodesToFind(n)
	reasons := map[string]int{}
	var best []string
	var bestScore int64 = -1
	found, processed := 0, 0
	for i := 0; i < n && found < want; i++ {
		name := s.order[(s.nextStart+i)%n]
		processed++
		if _, bad := s.badNodes[name]; bad {
			reasons["node(s) had malformed capacity"]++
			continue
		}
		ni := s.nodeInfos[name]
		if r := framework.RunFilters(pi, ni); len(r) > 0 {
			for _, x := range r {
				reasons[x]++
			}
			continue
		}
		found++
		score := framework.Score(pi, ni)
		switch {
		case score > bestScore:
			bestScore, best = score, append(best[:0], name)
		case score == bestScore:
			best = append(best, name)
		}
	}
	if n > 0 {
		s.nextStart = (s.nextStart + processed) % n
	}
	if len(best) == 0 {
		s.mu.Unlock()
		s.m.attempts.WithLabelValues("unschedulable").Inc()
		s.unschedulable(ctx, pod, framework.FailureMessage(n, reasons))
		s.queue.Unschedulable(key)
		return
	}
	node := best[s.rng.IntN(len(best))] // ties broken at random
	s.account(pod.Metadata.Uid, node, pi, true)
	s.mu.Unlock()
	s.binds <- bindJob{pod: pod, node: node, queued: queued, popped: popped}
}

// unschedulable records why: PodScheduled=False/Unschedulable (if it
// changed) and a FailedScheduling event.
func (s *Scheduler) unschedulable(ctx context.Context, pod *v1.Pod, msg string) {
	s.rec.Eventf(pod, record.Warning, "FailedScheduling", "%s", msg)
	for _, c := range pod.GetStatus().GetConditions() {
		if c.Type == "PodScheduled" && c.Status == "False" && c.Reason == "Unschedulable" && c.Message == msg {
			return
		}
	}
	st := proto.Clone(pod.GetStatus()).(*v1.PodStatus)
	if st == nil {
		st = &v1.PodStatus{Phase: "Pending"}
	}
	cond := &v1.PodCondition{Type: "PodScheduled", Status: "False", Reason: "Unschedulable", Message: msg, LastTransitionTime: timestamppb.Now()}
	replaced := false
	for i, c := range st.Conditions {
		if c.Type == "PodScheduled" {
			st.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		st.Conditions = append(st.Conditions, cond)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	upd := &v1.Pod{Metadata: &v1.ObjectMeta{Name: pod.Metadata.Name, Namespace: pod.Metadata.Namespace, Uid: pod.Metadata.Uid}, Status: st}
	if _, err := s.c.Pods().UpdateStatus(wctx, upd); err != nil && !client.IsNotFound(err) {
		slog.Warn("cannot record that a pod is unschedulable", "pod", api.NamespacedName(pod), "err", client.Message(err))
	}
}

func (s *Scheduler) bindWorker(ctx context.Context) {
	for {
		var job bindJob
		select {
		case <-ctx.Done():
			return
		case job = <-s.binds:
		}
		p := job.pod
		key := api.NamespacedName(p)
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := s.c.Bind(bctx, p.Metadata.Namespace, p.Metadata.Name, p.Metadata.Uid, job.node)
		cancel()
		if err != nil {
			s.mu.Lock()
			if pl, ok := s.placed[p.Metadata.Uid]; ok && pl.assumed {
				s.unaccount(pl)
				delete(s.placed, p.Metadata.Uid)
			}
			s.mu.Unlock()
			s.m.attempts.WithLabelValues("error").Inc()
			if client.IsNotFound(err) || client.IsConflict(err) {
				// Deleted, or bound meanwhile: nothing to retry.
				s.queue.Done(key)
				continue
			}
			slog.Warn("bind failed; retrying", "pod", key, "node", job.node, "err", client.Message(err))
			s.rec.Eventf(p, record.Warning, "FailedScheduling", "Binding rejected: %s", client.Message(err))
			s.queue.Retry(key)
			continue
		}
		bound := time.Now()
		s.mu.Lock()
		if pl, ok := s.placed[p.Metadata.Uid]; ok {
			pl.assumed = false
		}
		s.mu.Unlock()
		s.queue.Done(key)
		s.m.attempts.WithLabelValues("scheduled").Inc()
		s.m.attemptDuration.Observe(bound.Sub(job.popped).Seconds())
		s.m.e2eDuration.Observe(bound.Sub(job.queued).Seconds())
		s.rec.Eventf(p, record.Normal, "Scheduled", "Successfully assigned %s/%s to %s", p.Metadata.Namespace, p.Metadata.Name, job.node)
		if s.cfg.Observe != nil {
			s.cfg.Observe(p, job.node, job.queued, job.popped, bound)
		}
	}
}

func (s *Scheduler) reportQueue(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a, b, u := s.queue.Len()
		s.m.pending.WithLabelValues("active").Set(float64(a))
		s.m.pending.WithLabelValues("backoff").Set(float64(b))
		s.m.pending.WithLabelValues("unschedulable").Set(float64(u))
	}
}

type metrics struct {
	reg             *prometheus.Registry
	attempts        *prometheus.CounterVec
	attemptDuration prometheus.Histogram
	e2eDuration     prometheus.Histogram
	pending         *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scheduler_schedule_attempts_total",
			Help: "Scheduling attempts by result (scheduled, unschedulable, error)."}, []string{"result"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scheduler_scheduling_attempt_duration_seconds",
			Help: "From leaving the queue to bound.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18)}),
		e2eDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scheduler_pod_scheduling_duration_seconds",
			Help: "From first queued to bound.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "scheduler_pending_pods", Help: "Pods in each part of the queue."}, []string{"queue"}),
	}
	m.reg.MustRegister(m.attempts, m.attemptDuration, m.e2eDuration, m.pending, prometheus.NewGoCollector())
	return m
}

func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}
