package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kubelite/kubelite/apiserver/registry"
)

// etcdHealth probes etcd periodically, with a short timeout, and reports the
// result on the gRPC health service and /healthz (the Kubernetes apiserver's
// etcd health check). A NOSPACE alarm also counts as unhealthy, and starts a
// recovery: compaction, defragmentation, disarm.
type etcdHealth struct {
	client            *clientv3.Client
	maint             *registry.Maintenance
	interval, timeout time.Duration
	hs                *health.Server

	mu       sync.Mutex // guards problem, known, stopped, retryDelay, nextRecovery and failures
	problem  string     // why the apiserver is unhealthy; "" when healthy
	known    bool       // problem has been set at least once
	stopped  bool
	recovery sync.Mutex // held while a NOSPACE recovery runs
	// retryDelay is the back-off between NOSPACE recoveries that did not
	// clear the alarm (each compacts and may defragment, and makes every
	// informer relist): recoveryBackoffBase doubling to recoveryBackoffMax.
	retryDelay   time.Duration
	nextRecovery time.Time
	failures     int // probes in a row etcd did not answer (guarded by mu)

	// defragmenting says whether this apiserver is defragmenting an etcd
	// member (or just did); probe replaces probeEtcd in tests.
	defragmenting func() bool
	probe         func(ctx context.Context) (problem string, nospace, unanswered bool)
}

const (
	recoveryBackoffBase = time.Second
	recoveryBackoffMax  = 30 * time.Second
)

func (h *etcdHealth) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.check(ctx)
		}
	}
}

// unhealthyAfter is how many probes in a row etcd must fail to answer
// before the apiserver reports NOT_SERVING: one slow answer (a long fsync,
// a compaction) is no outage.
const unhealthyAfter = 3

// probeEtcd asks etcd once: problem says what is wrong ("" if nothing),
// unanswered that etcd did not answer at all (as opposed to answering with
// an alarm).
func (h *etcdHealth) probeEtcd(ctx context.Context) (problem string, nospace, unanswered bool) {
	if _, err := h.client.Get(ctx, "health"); err != nil {
		return fmt.Sprintf("etcd does not answer: %v", err), false, true
	}
	alarms, err := h.client.AlarmList(ctx)
	if err != nil {
		return fmt.Sprintf("etcd does not answer: %v", err), false, true
	}
	for _, a := range alarms.Alarms {
		switch a.Alarm {
		case etcdserverpb.AlarmType_NOSPACE:
			nospace = true
			problem = "etcd space exceeded: NOSPACE alarm raised, writes are refused; delete objects, the apiserver compacts, defragments and disarms"
		case etcdserverpb.AlarmType_CORRUPT:
			problem = fmt.Sprintf("etcd member %x raised the CORRUPT alarm", a.MemberID)
		}
	}
	return problem, nospace, false
}

// check probes etcd once and updates the reported health. An alarm counts
// at once; etcd not answering counts after unhealthyAfter probes in a row,
// and not at all while this apiserver defragments its etcd member (which
// stalls it on purpose).
func (h *etcdHealth) check(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	defragging := h.defragmenting != nil && h.defragmenting()
	probe := h.probe
	if probe == nil {
		probe = h.probeEtcd
	}
	problem, nospace, unanswered := probe(cctx)
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	if unanswered {
		if defragging || (h.defragmenting != nil && h.defragmenting()) {
			h.mu.Unlock()
			slog.Debug("etcd health probe not counted: this apiserver is defragmenting its etcd member", "reason", problem)
			return
		}
		h.failures++
		if n := h.failures; n < unhealthyAfter {
			h.mu.Unlock()
			slog.Warn("etcd health probe failed", "reason", problem, "failures_in_a_row", n, "unhealthy_after", unhealthyAfter)
			return
		}
	} else {
		h.failures = 0
	}
	h.mu.Unlock()
	h.set(problem)
	if !nospace {
		if problem == "" {
			h.mu.Lock()
			h.retryDelay, h.nextRecovery = 0, time.Time{}
			h.mu.Unlock()
			if h.maint != nil {
				h.maint.NoSpaceGone()
			}
		}
		return
	}
	h.mu.Lock()
	due := !time.Now().Before(h.nextRecovery)
	h.mu.Unlock()
	if due && h.recovery.TryLock() {
		go func() {
			defer h.recovery.Unlock()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			err := h.maint.RecoverSpace(rctx)
			if err == nil {
				return
			}
			h.mu.Lock()
			h.retryDelay = min(max(2*h.retryDelay, recoveryBackoffBase), recoveryBackoffMax)
			h.nextRecovery = time.Now().Add(h.retryDelay)
			retry := h.retryDelay
			h.mu.Unlock()
			switch {
			case errors.Is(err, registry.ErrRecoveredElsewhere):
				slog.Info("etcd NOSPACE: another apiserver is recovering", "check_again_in", retry)
			case errors.Is(err, registry.ErrStillFull):
				slog.Error("etcd NOSPACE: the live objects fill etcd's quota; delete objects (writes stay refused until then)", "err", err, "retry_in", retry)
			default:
				slog.Error("etcd NOSPACE recovery failed", "err", err, "retry_in", retry)
			}
		}()
	}
}

func (h *etcdHealth) set(problem string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || (h.known && problem == h.problem) {
		return
	}
	h.known = true
	h.problem = problem
	if problem == "" {
		slog.Info("apiserver healthy: etcd answers")
		h.hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		return
	}
	slog.Error("apiserver unhealthy", "reason", problem)
	h.hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
}

// shutdown reports NOT_SERVING for good.
func (h *etcdHealth) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.hs.Shutdown()
}

// healthz serves /healthz: 200 "ok", or 503 with the reason.
func (h *etcdHealth) healthz(w http.ResponseWriter, _ *http.Request) {
	h.mu.Lock()
	problem := h.problem
	h.mu.Unlock()
	if problem != "" {
		http.Error(w, "unhealthy: "+problem, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok"))
}
