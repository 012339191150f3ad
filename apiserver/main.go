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
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", 3<<20, "largest request accepted, in bytes")
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
