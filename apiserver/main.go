// Command apiserver serves kubelite's gRPC API over etcd (embedded by
// default, or an external cluster with --etcd-endpoints).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kubelite/kubelite/apiserver/server"
	"github.com/kubelite/kubelite/internal/cmdutil"
)

func main() {
	var cfg server.Config
	var endpoints string
	fs := flag.NewFlagSet("apiserver", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:6443", "gRPC listen address (host:port)")
	fs.StringVar(&endpoints, "etcd-endpoints", "", "comma-separated external etcd client URLs; empty embeds etcd")
	fs.StringVar(&cfg.DataDir, "data-dir", "kubelite-data", "folder for the embedded etcd's data")
	fs.StringVar(&cfg.EtcdClientURL, "etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd")
	fs.StringVar(&cfg.EtcdPeerURL, "etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd")
	fs.StringVar(&cfg.EtcdAdvertiseClientURL, "etcd-advertise-client-url", "", "client URL announced to other members (default: --etcd-client-url)")
	fs.StringVar(&cfg.EtcdAdvertisePeerURL, "etcd-advertise-peer-url", "", "peer URL announced to other members (default: --etcd-peer-url)")
	fs.StringVar(&cfg.EtcdName, "etcd-name", "kubelite", "this embedded etcd member's name")
	fs.StringVar(&cfg.EtcdInitialCluster, "etcd-initial-cluster", "", "the members of a new embedded etcd cluster, name=peerURL,... (default: this member alone)")
	fs.StringVar(&cfg.EtcdInitialClusterState, "etcd-initial-cluster-state", "new", "new or existing")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "HTTP address for /metrics and /healthz (empty: off)")
	fs.DurationVar(&cfg.CompactionInterval, "compaction-interval", 5*time.Minute, "how often to compact etcd history (0: never)")
	fs.DurationVar(&cfg.EventTTL, "event-ttl", time.Hour, "how long Events are kept")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", 3<<20, "largest gRPC request accepted, in bytes (objects are limited to 1.5 MiB)")
	fs.IntVar(&cfg.EtcdMaxRequestBytes, "etcd-max-request-bytes", 0, "the embedded etcd's --max-request-bytes (default: --max-request-bytes + 1 MiB)")
	fs.Int64Var(&cfg.EtcdQuotaBackendBytes, "etcd-quota-backend-bytes", 0, "the embedded etcd's --quota-backend-bytes (0: etcd's default, 2 GiB)")
	fs.Int64Var(&cfg.DefragMinFreeBytes, "defrag-min-free-bytes", 32<<20, "defragment etcd after a compaction when at least this much of its database is free")
	fs.DurationVar(&cfg.MinRequestTimeout, "min-request-timeout", 5*time.Minute, "a watch ends after a random one to two of these; clients resume it")
	fs.IntVar(&cfg.MaxWatches, "max-watches", 10000, "most open watch streams, server-wide (0: no cap)")
	fs.IntVar(&cfg.MaxWatchesPerClient, "max-watches-per-client", 1000, "most open watch and log streams per client host (IP address; all its connections together) (0: no cap)")
	fs.IntVar(&cfg.MaxStreamsPerConnection, "max-streams-per-connection", 0, "most concurrent gRPC streams on one client connection; more wait for a free one (0: --max-watches-per-client + 100)")
	fs.IntVar(&cfg.WatchCacheSize, "watch-cache-size", 20000, "events of history kept per resource for watches (also how far a watcher may fall behind)")
	fs.Int64Var(&cfg.WatchCacheBytes, "watch-cache-bytes", 32<<20, "bytes of history kept per resource for watches")
	fs.DurationVar(&cfg.HealthCheckInterval, "health-check-interval", 5*time.Second, "how often etcd's health is checked")
	fs.DurationVar(&cfg.HealthCheckTimeout, "health-check-timeout", 2*time.Second, "how long etcd may take to answer a health check")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long open requests get on shutdown")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(cmdutil.ExitUsage)
	}
	if endpoints != "" {
		cfg.EtcdEndpoints = strings.Split(endpoints, ",")
	}
	if err := cmdutil.SetupLogging("apiserver", *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	ctx := cmdutil.SignalContext()
	if err := server.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(cmdutil.ExitFailure)
	}
}
