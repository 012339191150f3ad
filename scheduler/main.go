// Command scheduler is kubelite's scheduler: it binds pending pods to nodes
// that fit them, and explains the pods that fit nowhere.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/cmdutil"
	"github.com/kubelite/kubelite/scheduler/core"
)

func main() {
	var cfg core.Config
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	fs.StringVar(&cfg.APIServer, "apiserver", "127.0.0.1:6443", "apiserver address host:port (several: comma-separated)")
	fs.StringVar(&cfg.SchedulerName, "scheduler-name", api.DefaultSchedulerName, "schedule pods whose spec.schedulerName is this")
	fs.StringVar(&cfg.Identity, "identity", "", "this replica's identity for leader election (default host_pid)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", true, "run leader election: only the leader schedules")
	fs.StringVar(&cfg.LeaseName, "leader-elect-lease-name", "kube-scheduler", "the Lease in kube-system used for election")
	fs.DurationVar(&cfg.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a leader's lease lasts without renewal")
	fs.DurationVar(&cfg.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long a leader tries to renew before stepping down")
	fs.DurationVar(&cfg.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try and leaders renew")
	fs.DurationVar(&cfg.BackoffInitial, "pod-initial-backoff", time.Second, "first back-off of an unschedulable pod")
	fs.DurationVar(&cfg.BackoffMax, "pod-max-backoff", 10*time.Second, "longest back-off of an unschedulable pod")
	fs.DurationVar(&cfg.MaxUnschedulable, "pod-max-unschedulable-duration", 5*time.Minute, "retry parked pods at least this often")
	fs.IntVar(&cfg.BindWorkers, "bind-workers", 32, "concurrent Bind calls")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "HTTP address for /metrics and /healthz (empty: off)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cmdutil.SetupLogging("scheduler", *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := core.Run(cmdutil.SignalContext(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(cmdutil.ExitFailure)
	}
}
