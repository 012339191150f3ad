// Command kubelet is kubelite's node agent: it runs the pods bound to its
// node as real processes and reports their status.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/kubelite/kubelite/internal/cmdutil"
	"github.com/kubelite/kubelite/kubelet/agent"
)

func main() {
	host, _ := os.Hostname()
	exe, _ := os.Executable()
	var cfg agent.Config
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	fs.StringVar(&cfg.APIServer, "apiserver", "127.0.0.1:6443", "apiserver address host:port (several: comma-separated)")
	fs.StringVar(&cfg.NodeName, "node-name", host, "this node's name")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "the address probes, hooks and logs use (default: the local address that reaches the apiserver)")
	fs.StringVar(&cfg.RootDir, "root-dir", "kubelet-data", "folder for pod folders, container state and logs")
	fs.StringVar(&cfg.ShimPath, "shim", filepath.Join(filepath.Dir(exe), "kubelet-shim"), "the kubelet-shim binary")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:10250", "the kubelet's gRPC address (logs), host:port")
	fs.StringVar(&cfg.CPU, "cpu", strconv.Itoa(runtime.NumCPU()), "cpu capacity to report (a quantity)")
	fs.StringVar(&cfg.Memory, "memory", "", "memory capacity to report (a quantity; default: the machine's)")
	fs.IntVar(&cfg.MaxPods, "max-pods", 110, "pods this node takes")
	fs.DurationVar(&cfg.LeaseDuration, "lease-duration", 40*time.Second, "node lease duration")
	fs.DurationVar(&cfg.LeaseRenewInterval, "lease-renew-interval", 10*time.Second, "how often the node lease is renewed")
	fs.DurationVar(&cfg.StatusUpdateFrequency, "node-status-update-frequency", 10*time.Second, "how often node status is computed (and posted if changed)")
	fs.DurationVar(&cfg.StatusReportFrequency, "node-status-report-frequency", 5*time.Minute, "how often node status is posted even if unchanged")
	fs.DurationVar(&cfg.BackOffBase, "backoff-base", 10*time.Second, "first CrashLoopBackOff delay (doubles per restart)")
	fs.DurationVar(&cfg.BackOffMax, "backoff-max", 300*time.Second, "longest CrashLoopBackOff delay")
	fs.Int64Var(&cfg.ContainerLogMaxSize, "container-log-max-size", 10<<20, "rotate a container log beyond this many bytes")
	fs.IntVar(&cfg.ContainerLogMaxFiles, "container-log-max-files", 5, "log files kept per container, the live one included")
	fs.StringVar(&cfg.VolumeDir, "volume-dir", "", "folder of PersistentVolumeClaim folders <ns>/<claim>, made when a pod first uses the claim and removed once the claim is deleted by the bound node (by any kubelet if that Node object is gone); all kubelets of a cluster must share it, e.g. one network mount (default <root-dir>/volumes)")
	fs.BoolVar(&cfg.DisableCgroups, "disable-cgroups", false, "run containers without cgroups even where available")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(cmdutil.ExitUsage)
	}
	if cfg.VolumeDir == "" {
		cfg.VolumeDir = filepath.Join(cfg.RootDir, "volumes")
	}
	if cfg.Memory == "" {
		cfg.Memory = agent.MachineMemory()
	}
	if err := cmdutil.SetupLogging("kubelet", *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(cmdutil.ExitUsage)
	}
	if err := agent.Run(cmdutil.SignalContext(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(cmdutil.ExitFailure)
	}
}
