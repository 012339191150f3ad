// Package app runs the controller-manager: shared informers, the
// ReplicaSet, Deployment and StatefulSet controllers, pvc-protection, node
// lifecycle and the garbage collector, behind leader election.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kubelite/kubelite/controller-manager/deployment"
	"github.com/kubelite/kubelite/controller-manager/garbagecollector"
	"github.com/kubelite/kubelite/controller-manager/nodelifecycle"
	"github.com/kubelite/kubelite/controller-manager/pvcprotection"
	"github.com/kubelite/kubelite/controller-manager/replicaset"
	"github.com/kubelite/kubelite/controller-manager/statefulset"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/leaderelection"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Config is the controller-manager's configuration.
type Config struct {
	APIServer     string
	Identity      string
	LeaderElect   bool
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Workers       int // per controller

	NodeMonitorPeriod      time.Duration
	NodeMonitorGracePeriod time.Duration
	PodEvictionTimeout     time.Duration
}

// Validate checks the configuration and names the flag at fault.
func (c *Config) Validate() error {
	if c.APIServer == "" {
		return errors.New("--apiserver: required")
	}
	if c.Workers <= 0 {
		return fmt.Errorf("--concurrent-syncs %d: must be positive", c.Workers)
	}
	if c.NodeMonitorPeriod <= 0 || c.NodeMonitorGracePeriod <= c.NodeMonitorPeriod {
		return fmt.Errorf("--node-monitor-grace-period %v must be greater than --node-monitor-period %v (> 0)", c.NodeMonitorGracePeriod, c.NodeMonitorPeriod)
	}
	return nil
}

// Run runs until ctx ends, or until leadership is lost (an error).
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c, err := client.New(cfg.APIServer)
	if err != nil {
		return err
	}
	defer c.Close()
	run := func(ctx context.Context) { runControllers(ctx, c, cfg) }
	if !cfg.LeaderElect {
		run(ctx)
		return nil
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	el, err := leaderelection.New(leaderelection.Config{
		Client: c, Namespace: "kube-system", Name: "kube-controller-manager", Identity: cfg.Identity,
		LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
		OnStartedLeading: run,
		OnNewLeader:      func(id string) { slog.Info("controller-manager leader", "identity", id) },
	})
	if err != nil {
		return err
	}
	return el.Run(ctx)
}

func runControllers(ctx context.Context, c *client.Client, cfg Config) {
	rec := record.New(c, "controller-manager", "")
	go rec.Run(ctx)
	pods := client.NewInformer(c.Pods(), nil)
	rss := client.NewInformer(c.ReplicaSets(), nil)
	deps := client.NewInformer(c.Deployments(), nil)
	stss := client.NewInformer(c.StatefulSets(), nil)
	revs := client.NewInformer(c.ControllerRevisions(), nil)
	claims := client.NewInformer(c.PersistentVolumeClaims(), nil)
	nodes := client.NewInformer(c.Nodes(), nil)
	leases := client.NewInformer(c.Leases(), &v1.ListRequest{Namespace: api.NodeLeaseNamespace})

	rsc := replicaset.New(c, rec, pods, rss)
	dc := deployment.New(c, rec, deps, rss, pods)
	ssc := statefulset.New(c, rec, stss, pods, revs, claims)
	pvcp := pvcprotection.New(c, claims, pods)
	nlc := nodelifecycle.New(nodelifecycle.Config{MonitorPeriod: cfg.NodeMonitorPeriod, GracePeriod: cfg.NodeMonitorGracePeriod,
		EvictionTimeout: cfg.PodEvictionTimeout}, c, rec, nodes, leases, pods)
	gc := garbagecollector.New(c)
	garbagecollector.StoreFor(gc, pods)
	garbagecollector.StoreFor(gc, rss)
	garbagecollector.StoreFor(gc, deps)
	garbagecollector.StoreFor(gc, stss)
	garbagecollector.StoreFor(gc, revs)
	garbagecollector.StoreFor(gc, claims)

	for _, run := range []func(context.Context){pods.Run, rss.Run, deps.Run, stss.Run, revs.Run, claims.Run, nodes.Run, leases.Run} {
		go run(ctx)
	}
	for _, synced := range []func(context.Context) bool{pods.WaitForSync, rss.WaitForSync, deps.WaitForSync, stss.WaitForSync, revs.WaitForSync, claims.WaitForSync, nodes.WaitForSync, leases.WaitForSync} {
		if !synced(ctx) {
			return
		}
	}
	slog.Info("controllers starting", "workers", cfg.Workers)
	go nlc.Run(ctx)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context, int){rsc.Run, dc.Run, ssc.Run, pvcp.Run, gc.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx, cfg.Workers) }()
	}
	wg.Wait()
}
