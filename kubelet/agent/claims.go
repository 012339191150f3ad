package agent

import (
	"slices"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	"github.com/kubelite/kubelite/internal/controller"
	"github.com/kubelite/kubelite/internal/record"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// The node side of PersistentVolumeClaims, as a local-path provisioner:
// a claim is the folder <volume-dir>/<namespace>/<claim>. Before a pod's
// containers start, each claim it names must exist and not be deleting;
// the first kubelet to use a claim binds it (status.phase Bound,
// annotation volume.kubernetes.io/selected-node, finalizer
// kubelite.io/claim-folder), then makes the folder. A folder made by an
// earlier kubelite (same path) is adopted as it is. When a claim bound
// here is deleted and only our finalizer is left (no pod in etcd uses it:
// the pvc-protection controller saw to that), this kubelet removes the
// folder, then the finalizer, and the claim leaves etcd.
//
// The volume folder must be shared by every kubelet of a cluster (one
// --volume-dir, as scripts/up.sh and the compose files set it up): a
// claim bound on one node is used by pods on any node, and when the
// selected node's Node object is gone (checked live) any kubelet takes
// over the removal, so a claim never stays Terminating for want of a
// node that no longer exists.

// claimRetryMax caps the wait between two tries to mount a pod's claims
// (claim events also wake the pod).
const claimRetryMax = 5 * time.Second

// claimManager binds claims and removes the folders of deleted ones.
type claimManager struct {
	k        *Kubelet
	informer *client.Informer[*v1.PersistentVolumeClaim]
	nodes    *client.Informer[*v1.Node] // a node's removal hands its claims' folders to us
	queue    client.Queue               // claims to clean up, "ns/name"
	// podsAdopted is closed once the pod informer synced and this
	// kubelet's pods have workers again (after a restart): only then can
	// podUsesClaim answer, so only then does cleanup start.
	podsAdopted chan struct{}
}

func newClaimManager(k *Kubelet) *claimManager {
	m := &claimManager{k: k, informer: client.NewInformer(k.c.PersistentVolumeClaims(), nil),
		nodes: client.NewInformer(k.c.Nodes(), nil), queue: client.NewQueue("claimfolders"), podsAdopted: make(chan struct{})}
	changed := func(c *v1.PersistentVolumeClaim) {
		if awaitsFolderRemoval(c) {
			m.queue.Add(controller.KeyOf(c))
		}
		k.wakePodsUsing(c.Metadata.Namespace, c.Metadata.Name)
	}
	m.informer.AddHandler(client.Handler[*v1.PersistentVolumeClaim]{OnAdd: changed, OnUpdate: func(_, c *v1.PersistentVolumeClaim) { changed(c) },
		OnDelete: func(c *v1.PersistentVolumeClaim) { k.wakePodsUsing(c.Metadata.Namespace, c.Metadata.Name) }})
	m.nodes.AddHandler(client.Handler[*v1.Node]{OnDelete: func(n *v1.Node) { m.nodeRemoved(n.Metadata.Name) }})
	return m
}

// podsSynced tells the manager that this kubelet's pods are adopted.
func (m *claimManager) podsSynced() { close(m.podsAdopted) }

func (m *claimManager) run(ctx context.Context) {
	go m.informer.Run(ctx)
	go m.nodes.Run(ctx)
	if !m.informer.WaitForSync(ctx) || !m.nodes.WaitForSync(ctx) {
		return
	}
	select {
	case <-m.podsAdopted:
	case <-ctx.Done():
		return
	}
	controller.RunWorkers(ctx, "claimfolders", m.queue, 1, m.cleanup)
}

// nodeRemoved queues the deleted claims whose selected node was name.
func (m *claimManager) nodeRemoved(name string) {
	for _, c := range m.informer.List(func(c *v1.PersistentVolumeClaim) bool {
		return awaitsFolderRemoval(c) && c.Metadata.Annotations[api.AnnSelectedNode] == name
	}) {
		m.queue.Add(controller.KeyOf(c))
	}
}

// ClaimDir is a claim's folder. Claim names are object names (DNS
// subdomains, at most 253 bytes, no "/" and no ".."), namespaces DNS
// labels: the path stays inside volumeDir and no element exceeds 255 bytes.
func ClaimDir(volumeDir, namespace, claim string) (string, error) {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", fmt.Errorf("namespace %q: %s", namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(claim); len(errs) > 0 {
		return "", fmt.Errorf("claimName %q: %s", claim, strings.Join(errs, "; "))
	}
	return filepath.Join(volumeDir, namespace, claim), nil
}

// podClaims lists the claims a pod's volumes name.
func podClaims(pod *v1.Pod) []string { return api.PodClaimNames(pod) }

// errClaimNotReady: the pod must wait (claim missing or being deleted).
var errClaimNotReady = errors.New("claim not ready")

// mount makes every claim of the pod usable: it exists, is not being
// deleted, is bound, and its folder exists.
func (m *claimManager) mount(ctx context.Context, pod *v1.Pod) error {
	ns := pod.Metadata.Namespace
	for _, name := range podClaims(pod) {
		dir, err := ClaimDir(m.k.cfg.VolumeDir, ns, name)
		if err != nil {
			return err
		}
		// Read live, not from the cache: a claim whose protection was just
		// lifted (no pod in etcd named it) must not be handed to a pod
		// created since.
		c, err := m.k.c.PersistentVolumeClaims().Get(ctx, ns, name)
		if client.IsNotFound(err) {
			return fmt.Errorf("%w: persistentvolumeclaim %q not found", errClaimNotReady, name)
		}
		if err != nil {
			return fmt.Errorf("persistentvolumeclaim %q: %s", name, client.Message(err))
		}
		if c.Metadata.DeletionTimestamp != nil {
			return fmt.Errorf("%w: persistentvolumeclaim %q is being deleted", errClaimNotReady, name)
		}
		if !isBound(c) {
			if err := m.bind(ctx, ns, name); err != nil {
				return err
			}
		}
		// The folder is made only once the claim carries the finalizer
		// that will remove it: no folder outlives its claim unnoticed.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("persistentvolumeclaim %q: folder %s: %w", name, dir, err)
		}
	}
	return nil
}

func isBound(c *v1.PersistentVolumeClaim) bool {
	return c.GetStatus().GetPhase() == "Bound" && c.Metadata.Annotations[api.AnnSelectedNode] != "" && slices.Contains(c.Metadata.Finalizers, api.FinalizerClaimFolder)
}

// bind marks a claim as this node's (unless another node bound it: the
// folder is shared), adds the folder finalizer and sets phase Bound and
// capacity. It works on the live object; a lost race is retried.
func (m *claimManager) bind(ctx context.Context, ns, name string) error {
	claims := m.k.c.PersistentVolumeClaims()
	for attempt := 0; ; attempt++ {
		c, err := claims.Get(ctx, ns, name)
		if err != nil {
			return fmt.Errorf("persistentvolumeclaim %q: %s", name, client.Message(err))
		}
		if c.Metadata.DeletionTimestamp != nil {
			return fmt.Errorf("%w: persistentvolumeclaim %q is being deleted", errClaimNotReady, name)
		}
		upd := proto.Clone(c).(*v1.PersistentVolumeClaim)
		if upd.Metadata.Annotations == nil {
			upd.Metadata.Annotations = map[string]string{}
		}
		if upd.Metadata.Annotations[api.AnnSelectedNode] == "" {
			upd.Metadata.Annotations[api.AnnSelectedNode] = m.k.cfg.NodeName
		}
		if !slices.Contains(upd.Metadata.Finalizers, api.FinalizerClaimFolder) {
			upd.Metadata.Finalizers = append(upd.Metadata.Finalizers, api.FinalizerClaimFolder)
		}
		if !proto.Equal(upd, c) {
			if c, err = claims.Update(ctx, upd); err != nil {
				if client.IsConflict(err) && attempt < 5 {
					continue
				}
				return fmt.Errorf("persistentvolumeclaim %q: bind: %s", name, client.Message(err))
			}
		}
		if c.GetStatus().GetPhase() != "Bound" {
			st := &v1.PersistentVolumeClaimStatus{Phase: "Bound", AccessModes: c.GetSpec().GetAccessModes(),
				Capacity: map[string]string{"storage": c.GetSpec().GetResources().GetRequests()["storage"]}}
			if _, err := claims.UpdateStatus(ctx, &v1.PersistentVolumeClaim{Metadata: &v1.ObjectMeta{Name: name, Namespace: ns, Uid: c.Metadata.Uid}, Status: st}); err != nil {
				return fmt.Errorf("persistentvolumeclaim %q: bind: %s", name, client.Message(err))
			}
			slog.Info("claim bound", "claim", ns+"/"+name, "node", c.Metadata.Annotations[api.AnnSelectedNode])
		}
		return nil
	}
}

// awaitsFolderRemoval: a claim being deleted with no finalizer left but
// the folder's.
func awaitsFolderRemoval(c *v1.PersistentVolumeClaim) bool {
	md := c.GetMetadata()
	return md.GetDeletionTimestamp() != nil && len(md.GetFinalizers()) == 1 && md.GetFinalizers()[0] == api.FinalizerClaimFolder
}

// removesFolder says whether this kubelet removes the folder of a claim
// awaiting it: the selected node's kubelet does; any kubelet does once
// the selected node's Node object is gone (read live: a node deleted and
// registered again keeps its own claims).
func (m *claimManager) removesFolder(ctx context.Context, c *v1.PersistentVolumeClaim) (bool, error) {
	sel := c.GetMetadata().GetAnnotations()[api.AnnSelectedNode]
	if sel == m.k.cfg.NodeName {
		return true, nil
	}
	if sel != "" {
		// A node this kubelet still sees needs no question; only one the
		// cache lacks is checked live before taking over its removal.
		if _, ok := m.nodes.Get(sel); ok {
			return false, nil
		}
		_, err := m.k.c.Nodes().Get(ctx, "", sel)
		if err == nil {
			return false, nil // its kubelet removes it (or will, when back)
		}
		if !client.IsNotFound(err) {
			return false, err
		}
	}
	return true, nil
}

// cleanup removes a deleted claim's folder, then its finalizer.
func (m *claimManager) cleanup(ctx context.Context, key string) error {
	c, ok := m.informer.Get(key)
	if !ok || !awaitsFolderRemoval(c) {
		return nil
	}
	if mine, err := m.removesFolder(ctx, c); err != nil || !mine {
		return err
	}
	ns, name := controller.SplitKey(key)
	if m.k.podUsesClaim(ns, name) {
		// pvc-protection let go, yet a pod here still names it: wait.
		return fmt.Errorf("claim %s: a pod on this node still uses it", key)
	}
	dir, err := ClaimDir(m.k.cfg.VolumeDir, ns, name)
	if err != nil {
		return err
	}
	// The cache may lag: remove only for the claim etcd still holds, so a
	// new claim of the same name never loses its folder.
	live, err := m.k.c.PersistentVolumeClaims().Get(ctx, ns, name)
	if client.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if live.Metadata.Uid != c.Metadata.Uid || !awaitsFolderRemoval(live) ||
		live.Metadata.Annotations[api.AnnSelectedNode] != c.Metadata.Annotations[api.AnnSelectedNode] {
		return nil
	}
	c = live
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("claim %s: remove folder: %w", key, err)
	}
	upd := proto.Clone(c).(*v1.PersistentVolumeClaim)
	upd.Metadata.Finalizers = api.WithoutFinalizer(upd.Metadata.Finalizers, api.FinalizerClaimFolder)
	if _, err := m.k.c.PersistentVolumeClaims().Update(ctx, upd); err != nil && !client.IsNotFound(err) {
		return fmt.Errorf("claim %s: remove finalizer: %s", key, client.Message(err))
	}
	slog.Info("claim folder removed", "claim", key, "dir", dir, "selectedNode", c.Metadata.Annotations[api.AnnSelectedNode])
	return nil
}

// podUsesClaim reports a pod of this kubelet whose processes may use the
// claim's folder: a worker that names the claim and has mounted it or
// started containers, or has not yet looked (just adopted after a
// restart). A worker counts until it leaves k.workers: a force-deleted
// pod's worker is still killing its processes. A pod still waiting in
// ContainerCreating does not count: it waits for this very claim to go.
func (k *Kubelet) podUsesClaim(ns, name string) bool {
	for _, w := range k.workerList() {
		pod, _ := w.snapshot()
		if w.claimsChecked.Load() && !w.claimsInUse.Load() {
			continue
		}
		if api.PodUsesClaim(pod, ns, name) {
			return true
		}
	}
	return false
}

// wakePodsUsing pokes the workers of pods that name the claim.
func (k *Kubelet) wakePodsUsing(ns, name string) {
	for _, w := range k.workerList() {
		if pod, _ := w.snapshot(); api.PodUsesClaim(pod, ns, name) {
			w.claimEvent.Store(true)
			w.poke()
		}
	}
}

// mountClaims is the pod worker's gate before it starts containers: true
// once the pod's claims are mounted. Until then the pod waits in
// ContainerCreating, with a FailedMount event, and retries (back-off up
// to claimRetryMax; claim events wake it sooner). A pod whose containers
// already ran (a restarted kubelet adopting it, or a pod from a kubelite
// whose claims were only folders) never waits: its folders exist; its
// claims are bound when they appear.
func (w *podWorker) mountClaims(ctx context.Context, pod *v1.Pod, now time.Time) (ok bool, retry time.Time) {
	defer func() {
		if ok {
			w.claimsInUse.Store(true)
		}
		w.claimsChecked.Store(true)
	}()
	if w.claimsMounted || w.terminal || len(podClaims(pod)) == 0 {
		return true, time.Time{}
	}
	started := false
	for _, c := range pod.Spec.Containers {
		started = started || w.current(c.Name) != nil
	}
	if !w.claimEvent.Swap(false) {
		if w.claimEventOnly {
			return started, time.Time{}
		}
		if !w.claimRetry.IsZero() && now.Before(w.claimRetry) {
			return started, w.claimRetry
		}
	}
	err := w.k.claims.mount(ctx, pod)
	if err == nil {
		w.claimsMounted = true
		w.claimWait = 0
		w.claimEventOnly = false
		return true, time.Time{}
	}
	var wait time.Duration
	wait, w.claimEventOnly = claimRetryAfter(err, started, w.claimWait)
	if !w.claimEventOnly {
		w.claimWait = wait
		w.claimRetry = now.Add(wait)
	}
	if started {
		slog.Debug("claims of a running pod not bound yet", "pod", w.podName(pod), "err", err)
		if w.claimEventOnly {
			return true, time.Time{}
		}
		return true, w.claimRetry
	}
	msg := err.Error()
	w.k.rec.Eventf(pod, record.Warning, "FailedMount", "Unable to attach or mount volumes for pod %s: %s", w.podName(pod), strings.TrimPrefix(msg, errClaimNotReady.Error()+": "))
	if !errors.Is(err, errClaimNotReady) {
		slog.Warn("cannot mount claims", "pod", w.podName(pod), "err", err)
	}
	return false, w.claimRetry
}

// claimRetryAfter decides when a pod worker tries its claims again after
// err: a pod whose containers run and whose claim is missing or deleting
// waits for the claim's next event (no polling the apiserver for a claim
// that may never come); otherwise the wait doubles from 500ms up to
// claimRetryMax (claim events still wake it sooner).
func claimRetryAfter(err error, started bool, last time.Duration) (wait time.Duration, eventOnly bool) {
	if started && errors.Is(err, errClaimNotReady) {
		return 0, true
	}
	return min(max(2*last, 500*time.Millisecond), claimRetryMax), false
}

// workerList is a snapshot of the pod workers, read outside k.mu.
func (k *Kubelet) workerList() []*podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	workers := make([]*podWorker, 0, len(k.workers))
	for _, w := range k.workers {
		workers = append(workers, w)
	}
	return workers
}
