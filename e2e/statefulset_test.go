package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func stsManifest(name string, replicas int, extraSpec, probeCmd string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  serviceName: %[1]s
  selector: {matchLabels: {app: %[1]s}}
  volumeClaimTemplates: [{metadata: {name: data}}]
%[3]s
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        command: [kubelite-app, --append, "$(VOLUME_DATA)/log", --every, 200ms]
        env: [{name: VERSION, value: "1"}]
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe: {exec: {command: %[4]s}, periodSeconds: 1, timeoutSeconds: 5}
`, name, replicas, extraSpec, probeCmd)
}

const probeOK = `["true"]`

// podLog records the order of pod events for a set.
type podLog struct {
	mu     sync.Mutex
	events []string // "ADDED web-1", "READY web-0", "DELETED web-2"
}

func (l *podLog) add(e string) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }
func (l *podLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// watchSet records when each pod of app is created, first ready, deleted.
func watchSet(t *testing.T, c *cluster, app string) *podLog {
	cl := c.apiClient()
	w, err := cl.Pods().Watch(tctx(t), &v1.WatchRequest{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	l := &podLog{}
	ready := map[string]bool{}
	go func() {
		for {
			typ, p, err := w.Recv()
			if err != nil {
				return
			}
			key := p.Metadata.Name + "/" + p.Metadata.Uid
			switch {
			case typ == "ADDED":
				l.add("ADDED " + p.Metadata.Name)
			case typ == "DELETED":
				l.add("DELETED " + p.Metadata.Name)
			}
			isReady := false
			for _, cnd := range p.GetStatus().GetConditions() {
				isReady = isReady || (cnd.Type == "Ready" && cnd.Status == "True")
			}
			if isReady && !ready[key] {
				ready[key] = true
				l.add("READY " + p.Metadata.Name)
			}
			if p.Metadata.DeletionTimestamp != nil && !ready[key+"/deleting"] {
				ready[key+"/deleting"] = true
				l.add("DELETING " + p.Metadata.Name)
			}
		}
	}()
	t.Cleanup(w.Stop)
	return l
}

func index(events []string, e string) int {
	for i, x := range events {
		if x == e {
			return i
		}
	}
	return -1
}

func revisionsOf(t *testing.T, c *cluster, app string) map[string]string {
	out := map[string]string{}
	for _, p := range podsWith(t, c.apiClient(), "app="+app) {
		out[p.Metadata.Name] = p.Metadata.Labels["controller-revision-hash"]
	}
	return out
}

func TestStatefulSetOrderAndUpdates(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	log := watchSet(t, c, "web")
	c.applyText(t, stsManifest("web", 3, "", probeOK))
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/web", "--timeout", "2m")
	ev := log.list()
	for i := 1; i < 3; i++ {
		if a, r := index(ev, fmt.Sprintf("ADDED web-%d", i)), index(ev, fmt.Sprintf("READY web-%d", i-1)); a < 0 || r < 0 || a < r {
			t.Errorf("web-%d created (event %d) before web-%d was ready (event %d): %v", i, a, i-1, r, ev)
		}
	}
	// Each ordinal writes to its own folder, which survives the update.
	vol := filepath.Join(c.state, "volumes", "default")
	waitFor(t, "web-2's folder to fill", func() bool { b, _ := os.ReadFile(filepath.Join(vol, "data-web-2", "log")); return len(b) > 0 })
	before, _ := os.ReadFile(filepath.Join(vol, "data-web-2", "log"))

	// Rolling update, highest ordinal first.
	log2 := watchSet(t, c, "web")
	c.kubectl("set", "env", "statefulset/web", "VERSION=2")
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/web", "--timeout", "2m")
	ev = log2.list()
	d2, d1, d0 := index(ev, "DELETING web-2"), index(ev, "DELETING web-1"), index(ev, "DELETING web-0")
	if d2 < 0 || d1 < 0 || d0 < 0 || !(d2 < d1 && d1 < d0) {
		t.Errorf("update order: %v", ev)
	}
	if r2 := index(ev[d2:], "READY web-2"); r2 < 0 || d2+r2 > d1 {
		t.Errorf("web-1 was replaced before the new web-2 was ready: %v", ev)
	}
	var after []byte
	waitFor(t, "the new web-2 to write", func() bool {
		after, _ = os.ReadFile(filepath.Join(vol, "data-web-2", "log"))
		return len(after) > len(before)
	})
	if !strings.HasPrefix(string(after), string(before)) {
		t.Errorf("web-2's folder lost its data across the update (%d bytes before, %d after)", len(before), len(after))
	}

	// Partition: only ordinals >= 2 update.
	c.kubectl("apply", "-f", writeTemp(t, stsManifest("web", 3, "  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}", probeOK)))
	c.kubectl("set", "env", "statefulset/web", "VERSION=3")
	out := c.must("bin/kubectl-lite", "rollout", "status", "statefulset/web", "--timeout", "2m")
	if !strings.Contains(out, "partitioned roll out complete: 1 new pods have been updated") {
		t.Errorf("partitioned rollout status:\n%s", out)
	}
	revs := revisionsOf(t, c, "web")
	s, _ := cl.StatefulSets().Get(tctx(t), "default", "web")
	if revs["web-2"] != s.Status.UpdateRevision || revs["web-1"] == s.Status.UpdateRevision || revs["web-0"] == s.Status.UpdateRevision {
		t.Errorf("partition 2: revisions %v, update revision %s", revs, s.Status.UpdateRevision)
	}
	// A partition beyond replicas updates nothing.
	c.kubectl("apply", "-f", writeTemp(t, stsManifest("web", 3, "  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 10}}", probeOK)))
	c.kubectl("set", "env", "statefulset/web", "VERSION=4")
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/web", "--timeout", "2m")
	s, _ = cl.StatefulSets().Get(tctx(t), "default", "web")
	for name, r := range revisionsOf(t, c, "web") {
		if r == s.Status.UpdateRevision {
			t.Errorf("%s updated despite partition 10", name)
		}
	}

	// Ordered scale down: web-2 gone before web-1 is deleted.
	log3 := watchSet(t, c, "web")
	c.kubectl("scale", "statefulset/web", "--replicas=1")
	waitFor(t, "one pod left", func() bool { return len(podsWith(t, cl, "app=web")) == 1 })
	ev = log3.list()
	if g2, x1 := index(ev, "DELETED web-2"), index(ev, "DELETING web-1"); g2 < 0 || x1 < 0 || g2 > x1 {
		t.Errorf("scale down order: %v", ev)
	}
	if _, err := os.Stat(filepath.Join(vol, "data-web-2")); err != nil {
		t.Errorf("the claim folder of a scaled-away ordinal was removed (retention is Retain): %v", err)
	}
}

func writeTemp(t *testing.T, content string) string {
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestStatefulSetOnDeleteAndMaxUnavailable(t *testing.T) {
	c := startCluster(t)
	cl := c.apiClient()
	c.applyText(t, stsManifest("od", 2, "  updateStrategy: {type: OnDelete}", probeOK))
	waitFor(t, "2 ready", func() bool { _, r := activeReady(podsWith(t, cl, "app=od")); return r == 2 })
	old := revisionsOf(t, c, "od")
	c.kubectl("set", "env", "statefulset/od", "VERSION=2")
	waitFor(t, "the new revision to be observed", func() bool {
		s, _ := cl.StatefulSets().Get(tctx(t), "default", "od")
		return s.GetStatus().GetUpdateRevision() != old["od-0"]
	})
	if now := revisionsOf(t, c, "od"); now["od-0"] != old["od-0"] || now["od-1"] != old["od-1"] {
		t.Errorf("OnDelete replaced pods by itself: %v -> %v", old, now)
	}
	c.kubectl("delete", "pod", "od-1")
	waitFor(t, "od-1 recreated at the new revision", func() bool {
		s, _ := cl.StatefulSets().Get(tctx(t), "default", "od")
		return revisionsOf(t, c, "od")["od-1"] == s.GetStatus().GetUpdateRevision()
	})

	// maxUnavailable 2: two pods are replaced at once.
	c.applyText(t, stsManifest("mu", 4, "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}", probeOK))
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/mu", "--timeout", "2m")
	log := watchSet(t, c, "mu")
	c.kubectl("set", "env", "statefulset/mu", "VERSION=2")
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/mu", "--timeout", "2m")
	ev := log.list()
	d3, d2 := index(ev, "DELETING mu-3"), index(ev, "DELETING mu-2")
	r3 := -1
	if d3 >= 0 {
		if i := index(ev[d3:], "READY mu-3"); i >= 0 {
			r3 = d3 + i // the new mu-3
		}
	}
	if d3 < 0 || d2 < 0 || (r3 >= 0 && d2 > r3) {
		t.Errorf("with maxUnavailable 2, mu-2 should go before the new mu-3 is ready: %v", ev)
	}
}

func TestStatefulSetBrokenRolloutRecovers(t *testing.T) {
	c := startCluster(t)
	c.applyText(t, stsManifest("br", 3, "", probeOK))
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/br", "--timeout", "2m")
	good := revisionsOf(t, c, "br")["br-0"]
	// A template whose pods never become ready stops the rollout at br-2.
	c.kubectl("apply", "-f", writeTemp(t, stsManifest("br", 3, "", `["false"]`)))
	waitFor(t, "br-2 replaced and stuck unready", func() bool {
		revs := revisionsOf(t, c, "br")
		return revs["br-2"] != "" && revs["br-2"] != good
	})
	out, code := c.run("bin/kubectl-lite", "rollout", "status", "statefulset/br", "--timeout", "5s")
	if code == 0 || !strings.Contains(out, "br-2: new pod running, not yet ready") {
		t.Errorf("rollout status of a stuck rollout (exit %d):\n%s", code, out)
	}
	if revs := revisionsOf(t, c, "br"); revs["br-1"] != good || revs["br-0"] != good {
		t.Errorf("the rollout went past the broken pod: %v", revs)
	}
	// Reverting the template is not enough (Kubernetes issue 67250): the
	// stuck pod must be deleted too.
	c.kubectl("apply", "-f", writeTemp(t, stsManifest("br", 3, "", probeOK)))
	c.kubectl("delete", "pod", "br-2")
	c.must("bin/kubectl-lite", "rollout", "status", "statefulset/br", "--timeout", "2m")
	revs := revisionsOf(t, c, "br")
	names := make([]string, 0, len(revs))
	for n, r := range revs {
		if r != good {
			t.Errorf("%s at %s after recovery, want %s", n, r, good)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "br-0,br-1,br-2" {
		t.Errorf("pods after recovery: %v", names)
	}
}

func TestStatefulSetImmutableFields(t *testing.T) {
	c := startCluster(t)
	c.applyText(t, stsManifest("imm", 1, "", probeOK))
	changedSel := strings.Replace(stsManifest("imm", 1, "", probeOK), "selector: {matchLabels: {app: imm}}", "selector: {matchLabels: {app: imm, tier: x}}", 1)
	changedSel = strings.Replace(changedSel, "labels: {app: imm}", "labels: {app: imm, tier: x}", 1)
	out, code := c.run("bin/kubectl-lite", "apply", "-f", writeTemp(t, changedSel))
	if code != 1 || !strings.Contains(out, "spec.selector") {
		t.Errorf("changed selector: exit %d\n%s", code, out)
	}
	changedClaims := strings.Replace(stsManifest("imm", 1, "", probeOK), "[{metadata: {name: data}}]", "[{metadata: {name: data}}, {metadata: {name: more}}]", 1)
	out, code = c.run("bin/kubectl-lite", "apply", "-f", writeTemp(t, changedClaims))
	if code != 1 || !strings.Contains(out, "spec.volumeClaimTemplates") {
		t.Errorf("changed claims: exit %d\n%s", code, out)
	}
}
