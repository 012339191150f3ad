// Package agent is the kubelet: it registers its Node, renews its Lease,
// watches the pods bound to it, runs one worker per pod over the process
// runtime, reports pod status and serves container logs.
package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/record"
	"github.com/kubelite/kubelite/kubelet/runtime"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Config is the kubelet's configuration.
type Config struct {
	APIServer string // host:port (comma-separated for several)
	NodeName  string
	NodeIP    string // the address probes and logs use
	RootDir   string // state: pods, logs
	ShimPath  string
	Listen    string // the kubelet's own gRPC address (logs), host:port

	CPU     string // capacity, a quantity
	Memory  string
	MaxPods int

	LeaseDuration         time.Duration
	LeaseRenewInterval    time.Duration
	StatusUpdateFrequency time.Duration
	StatusReportFrequency time.Duration

	// BackOffBase and BackOffMax shape CrashLoopBackOff (10 s and 300 s).
	BackOffBase time.Duration
	BackOffMax  time.Duration

	// VolumeDir holds persistentVolumeClaim folders (<ns>/<claim>); several
	// kubelets on one host may share it, like a network disk.
	VolumeDir string

	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// DisableCgroups runs without cgroups even where they work.
	DisableCgroups bool
}

// Validate checks the configuration and names the flag at fault.
func (c *Config) Validate() error {
	switch {
	case c.APIServer == "":
		return errors.New("--apiserver: required (host:port)")
	case c.NodeName == "":
		return errors.New("--node-name: required")
	case c.RootDir == "":
		return errors.New("--root-dir: required")
	case c.MaxPods <= 0:
		return fmt.Errorf("--max-pods %d: must be positive", c.MaxPods)
	case c.LeaseRenewInterval <= 0 || c.LeaseDuration < c.LeaseRenewInterval:
		return fmt.Errorf("--lease-renew-interval %v must be positive and at most --lease-duration %v", c.LeaseRenewInterval, c.LeaseDuration)
	case c.BackOffBase <= 0 || c.BackOffMax < c.BackOffBase:
		return fmt.Errorf("--backoff-base %v must be positive and at most --backoff-max %v", c.BackOffBase, c.BackOffMax)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: expected host:port: %w", c.Listen, err)
	}
	return nil
}

// Kubelet is one node's agent.
type Kubelet struct {
	cfg           Config
	c             *client.Client
	rec           *record.Recorder
	rt            *runtime.Runtime
	status        *statusManager
	informer      *client.Informer[*v1.Pod]
	claims        *claimManager
	cgroupProblem string
	serverPort    int

	mu       sync.Mutex // guards workers and finished
	workers  map[string]*podWorker
	finished map[string]bool // uids whose termination is done (finalizers may hold them)
	ctx      context.Context
}

// Run runs the kubelet until ctx ends. Ending the kubelet leaves its pods
// running: a restarted kubelet adopts them.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.VolumeDir == "" {
		cfg.VolumeDir = filepath.Join(cfg.RootDir, "volumes")
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = localAddressTo(cfg.APIServer)
	}
	c, err := client.New(cfg.APIServer)
	if err != nil {
		return err
	}
	defer c.Close()
	k := &Kubelet{cfg: cfg, c: c, workers: map[string]*podWorker{}, finished: map[string]bool{}, ctx: ctx}
	k.rec = record.New(c, "kubelet", cfg.NodeName)
	k.status = newStatusManager(c)

	var cg *runtime.Cgroups
	if cfg.DisableCgroups {
		k.cgroupProblem = "disabled with --disable-cgroups"
	} else {
		cg, k.cgroupProblem = runtime.DetectCgroups(cgroupName(cfg))
	}
	if k.cgroupProblem != "" {
		slog.Warn("running containers without cpu and memory limits", "reason", k.cgroupProblem)
	}
	k.rt, err = runtime.New(runtime.Config{Root: cfg.RootDir, ShimPath: cfg.ShimPath, Cgroups: cg, OnExit: k.wakePod})
	if err != nil {
		return err
	}
	onDisk, err := k.rt.Recover()
	if err != nil {
		return fmt.Errorf("recover containers from %s: %w", cfg.RootDir, err)
	}

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	k.serverPort = lis.Addr().(*net.TCPAddr).Port
	gs := grpc.NewServer()
	v1.RegisterKubeletServiceServer(gs, &logServer{k: k})
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	go k.rec.Run(ctx)
	go k.status.run(ctx)
	if err := k.registerNode(ctx); err != nil {
		return err
	}
	go k.runLease(ctx)
	go k.runNodeStatus(ctx)
	go k.rotateLogs(ctx)

	k.claims = newClaimManager(k)
	go k.claims.run(ctx)
	k.informer = client.NewInformer(c.Pods(), &v1.ListRequest{FieldSelector: "spec.nodeName=" + cfg.NodeName})
	k.informer.AddHandler(client.Handler[*v1.Pod]{
		OnAdd:    func(p *v1.Pod) { k.podUpdated(p) },
		OnUpdate: func(_, p *v1.Pod) { k.podUpdated(p) },
		OnDelete: func(p *v1.Pod) { k.podRemoved(p.Metadata.Uid) },
	})
	go k.informer.Run(ctx)
	if !k.informer.WaitForSync(ctx) {
		return ctx.Err()
	}
	k.cleanupOrphans(onDisk)
	k.claims.podsSynced()
	slog.Info("kubelet ready", "node", cfg.NodeName, "listen", lis.Addr().String(), "root", cfg.RootDir)
	<-ctx.Done()
	slog.Info("kubelet stopping; pods keep running")
	return nil
}

// cleanupOrphans stops what runs for pods this node no longer has: pods
// deleted while the kubelet was down, and stray cgroups.
func (k *Kubelet) cleanupOrphans(onDisk []string) {
	for _, uid := range onDisk {
		k.mu.Lock()
		_, known := k.workers[uid]
		k.mu.Unlock()
		if known {
			continue
		}
		slog.Info("stopping containers of a pod that is no longer bound here", "pod_uid", uid)
		if err := k.rt.RemovePod(uid); err != nil {
			slog.Warn("cannot remove orphaned pod", "pod_uid", uid, "err", err)
		}
	}
	for _, uid := range k.rt.StrayCgroupPods() {
		k.mu.Lock()
		_, known := k.workers[uid]
		k.mu.Unlock()
		if !known {
			k.rt.KillCgroupPod(uid)
		}
	}
}

// cgroupName is this kubelet's cgroup folder: the node name plus a hash of
// its state folder. Several kubelets share one host here (tests, up.sh), and
// each cleans up the cgroups it finds orphaned: it must see only its own.
func cgroupName(cfg Config) string {
	root, err := filepath.Abs(cfg.RootDir)
	if err != nil {
		root = cfg.RootDir
	}
	h := fnv.New32a()
	h.Write([]byte(root))
	return fmt.Sprintf("%s-%08x", cfg.NodeName, h.Sum32())
}

func (k *Kubelet) podUpdated(p *v1.Pod) {
	uid := p.Metadata.Uid
	k.mu.Lock()
	if k.finished[uid] {
		k.mu.Unlock()
		return
	}
	w, ok := k.workers[uid]
	if !ok {
		w = newPodWorker(k, p)
		k.workers[uid] = w
		go w.run(k.ctx)
	}
	k.mu.Unlock()
	w.update(p)
}

func (k *Kubelet) podRemoved(uid string) {
	k.mu.Lock()
	delete(k.finished, uid)
	w := k.workers[uid]
	k.mu.Unlock()
	if w != nil {
		w.removed()
	}
}

func (k *Kubelet) wakePod(uid string) {
	k.mu.Lock()
	w := k.workers[uid]
	k.mu.Unlock()
	if w != nil {
		w.poke()
	}
}

// forget ends a worker; a pod that was terminated gets no new one.
func (k *Kubelet) forget(uid string, terminated bool) {
	k.mu.Lock()
	delete(k.workers, uid)
	if terminated {
		k.finished[uid] = true
	}
	k.mu.Unlock()
	k.status.Forget(uid)
}

// rotateLogs rotates container logs over their size limit every 10 s, as
// the kubelet's container log manager does: by rename, with the shim
// reopening its file (runtime.RotateLog), so no line is lost.
func (k *Kubelet) rotateLogs(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.rt.RotateLogs(k.cfg.ContainerLogMaxSize, k.cfg.ContainerLogMaxFiles)
	}
}

// localAddressTo is the local IP address of the route to the first
// apiserver (a UDP "connection" sends nothing); 127.0.0.1 if none.
func localAddressTo(apiservers string) string {
	host := strings.Split(apiservers, ",")[0]
	c, err := net.Dial("udp", host)
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
