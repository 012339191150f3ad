package agent

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// KubeletVersion is what the node reports.
const KubeletVersion = "v1.34.0-kubelite"

// MachineMemory reads MemTotal from /proc/meminfo, as a quantity.
func MachineMemory() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "0"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return strconv.FormatInt(kb, 10) + "Ki"
		}
	}
	return "0"
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func osImage() string {
	b, _ := os.ReadFile("/etc/os-release")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func kernelVersion() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// desiredNode is the Node this kubelet reports.
func (k *Kubelet) desiredNode() *v1.Node {
	cfg := k.cfg
	capacity := map[string]string{"cpu": cfg.CPU, "memory": cfg.Memory, "pods": strconv.Itoa(cfg.MaxPods)}
	now := timestamppb.New(time.Now())
	conds := []*v1.NodeCondition{
		{Type: "MemoryPressure", Status: "False", Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: "DiskPressure", Status: "False", Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: "PIDPressure", Status: "False", Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: "Ready", Status: "True", Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	if k.cgroupProblem != "" {
		conds = append(conds, &v1.NodeCondition{Type: "ResourceLimitsEnforced", Status: "False", Reason: "CgroupsUnavailable",
			Message: "containers run without cpu and memory limits: " + k.cgroupProblem})
	} else {
		conds = append(conds, &v1.NodeCondition{Type: "ResourceLimitsEnforced", Status: "True", Reason: "CgroupsAvailable", Message: "cpu and memory limits are enforced through cgroups"})
	}
	for _, c := range conds {
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
	}
	return &v1.Node{
		Metadata: &v1.ObjectMeta{Name: cfg.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": cfg.NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
		}},
		Status: &v1.NodeStatus{
			Capacity: capacity, Allocatable: capacity, Conditions: conds,
			Addresses: []*v1.NodeAddress{{Type: "InternalIP", Address: cfg.NodeIP}, {Type: "Hostname", Address: cfg.NodeName}},
			NodeInfo: &v1.NodeSystemInfo{
				MachineId: readTrim("/etc/machine-id"), BootId: readTrim("/proc/sys/kernel/random/boot_id"),
				KernelVersion: kernelVersion(), OsImage: osImage(), OperatingSystem: "linux", Architecture: runtime.GOARCH,
				KubeletVersion: KubeletVersion,
			},
			DaemonEndpoints: &v1.NodeDaemonEndpoints{KubeletEndpoint: &v1.DaemonEndpoint{Port: int32(k.serverPort)}},
		},
	}
}

// sameNodeStatus compares statuses ignoring heartbeat times.
func sameNodeStatus(a, b *v1.NodeStatus) bool {
	a, b = proto.Clone(a).(*v1.NodeStatus), proto.Clone(b).(*v1.NodeStatus)
	for _, s := range []*v1.NodeStatus{a, b} {
		for _, c := range s.GetConditions() {
			c.LastHeartbeatTime, c.LastTransitionTime = nil, nil
		}
	}
	return proto.Equal(a, b)
}

// registerNode creates the Node or brings an existing one up to date,
// retrying with back-off until the apiserver answers.
func (k *Kubelet) registerNode(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		err := k.syncNodeStatus(ctx, true)
		if err == nil {
			slog.Info("node registered", "node", k.cfg.NodeName)
			return nil
		}
		slog.Warn("cannot register node; retrying", "node", k.cfg.NodeName, "apiserver", k.cfg.APIServer, "err", client.Message(err), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 7*time.Second)
	}
}

// syncNodeStatus writes the node's status if it changed, or if force (the
// periodic report).
func (k *Kubelet) syncNodeStatus(ctx context.Context, force bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want := k.desiredNode()
	nodes := k.c.Nodes()
	cur, err := nodes.Get(ctx, "", k.cfg.NodeName)
	if client.IsNotFound(err) {
		_, err = nodes.Create(ctx, want)
		return err
	}
	if err != nil {
		return err
	}
	if cur.Metadata.Labels == nil {
		cur.Metadata.Labels = map[string]string{}
	}
	changedLabels := false
	for l, v := range want.Metadata.Labels {
		if cur.Metadata.Labels[l] != v {
			cur.Metadata.Labels[l] = v
			changedLabels = true
		}
	}
	if changedLabels {
		if cur, err = nodes.Update(ctx, cur); err != nil {
			return err
		}
	}
	if !force && sameNodeStatus(cur.Status, want.Status) {
		return nil
	}
	// Keep transition times of conditions that did not change.
	for _, c := range want.Status.Conditions {
		for _, o := range cur.GetStatus().GetConditions() {
			if o.Type == c.Type && o.Status == c.Status && o.LastTransitionTime != nil {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	cur.Status = want.Status
	_, err = nodes.UpdateStatus(ctx, cur)
	return err
}

// runNodeStatus reports status on change every StatusUpdateFrequency, and
// unconditionally every StatusReportFrequency (Kubernetes: 10 s and 5 min).
func (k *Kubelet) runNodeStatus(ctx context.Context) {
	t := time.NewTicker(k.cfg.StatusUpdateFrequency)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		force := time.Since(last) >= k.cfg.StatusReportFrequency
		if err := k.syncNodeStatus(ctx, force); err != nil {
			slog.Warn("node status update failed", "err", client.Message(err))
			continue
		}
		if force {
			last = time.Now()
		}
	}
}

// runLease renews the node's Lease in kube-node-lease every LeaseRenewInterval;
// a failed renew retries with back-off (200 ms to 7 s).
func (k *Kubelet) runLease(ctx context.Context) {
	leases := k.c.Leases()
	holder := k.cfg.NodeName
	dur := int32(k.cfg.LeaseDuration / time.Second)
	for {
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			now := timestamppb.Now()
			l, err := leases.Get(cctx, api.NodeLeaseNamespace, k.cfg.NodeName)
			if client.IsNotFound(err) {
				_, err = leases.Create(cctx, &v1.Lease{
					Metadata: &v1.ObjectMeta{Name: k.cfg.NodeName, Namespace: api.NodeLeaseNamespace,
						OwnerReferences: k.nodeOwnerRef()},
					Spec: &v1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: now, AcquireTime: now},
				})
				return err
			}
			if err != nil {
				return err
			}
			l.Spec.RenewTime = now
			l.Spec.HolderIdentity = &holder
			l.Spec.LeaseDurationSeconds = &dur
			_, err = leases.Update(cctx, l)
			return err
		}()
		wait := k.cfg.LeaseRenewInterval
		if err != nil {
			slog.Warn("node lease renew failed", "err", client.Message(err))
			wait = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (k *Kubelet) nodeOwnerRef() []*v1.OwnerReference {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := k.c.Nodes().Get(ctx, "", k.cfg.NodeName)
	if err != nil {
		return nil
	}
	return []*v1.OwnerReference{{ApiVersion: "v1", Kind: "Node", Name: n.Metadata.Name, Uid: n.Metadata.Uid}}
}
