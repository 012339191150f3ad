// Command controller-manager runs kubelite's controllers: ReplicaSet,
// Deployment and the garbage collector.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kubelite/kubelite/controller-manager/app"
	"github.com/kubelite/kubelite/internal/cmdutil"
)

func main() {
	var cfg app.Config
	fs := flag.NewFlagSet("controller-manager", flag.ContinueOnError)
	fs.StringVar(&cfg.APIServer, "apiserver", "127.0.0.1:6443", "apiserver address host:port (several: comma-separated)")
	fs.StringVar(&cfg.Identity, "identity", "", "this replica's identity for leader election (default host_pid)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", true, "run leader election: only the leader runs controllers")
	fs.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a leader's lease lasts without renewal")
	fs.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long a leader tries to renew before stepping down")
	fs.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try and leaders renew")
	fs.IntVar(&cfg.Workers, "concurrent-syncs", 5, "workers per controller")
	fs.DurationVar(&cfg.NodeMonitorPeriod, "node-monitor-period", 5*time.Second, "how often node heartbeats are checked")
	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", 50*time.Second, "silence after which a node is Unknown")
	fs.DurationVar(&cfg.PodEvictionTimeout, "default-unreachable-toleration", 300*time.Second, "how long pods stay on an unreachable node before eviction (their own toleration wins)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cmdutil.SetupLogging("controller-manager", *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "controller-manager:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "controller-manager:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := app.Run(cmdutil.SignalContext(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "controller-manager:", err)
		os.Exit(cmdutil.ExitFailure)
	}
}
