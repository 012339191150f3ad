package server_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubelite/kubelite/apiserver/apiservertest"
	"github.com/kubelite/kubelite/internal/api"
	"github.com/kubelite/kubelite/internal/client"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func i64(v int64) *int64 { return &v }

func hostilePod(name string, mutate func(p *v1.Pod)) *v1.Pod {
	p := pod(name, map[string]string{"app": name})
	p.Spec.Containers[0].Resources = &v1.ResourceRequirements{Requests: map[string]string{"cpu": "100m"}}
	mutate(p)
	return p
}

func hostileTemplate(mutate func(t *v1.PodTemplateSpec)) *v1.PodTemplateSpec {
	t := &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"sleep", "100"}}}}}
	mutate(t)
	return t
}

func hostileDeployment(name string, mutate func(t *v1.PodTemplateSpec)) *v1.Deployment {
	return &v1.Deployment{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.DeploymentSpec{
		Selector: &v1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: hostileTemplate(mutate)}}
}

func hostileStatefulSet(name string, mutate func(s *v1.StatefulSet)) *v1.StatefulSet {
	s := &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: name}, Spec: &v1.StatefulSetSpec{
		Selector:             &v1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
		Template:             hostileTemplate(func(*v1.PodTemplateSpec) {}),
		VolumeClaimTemplates: []*v1.PersistentVolumeClaimTemplate{{Metadata: &v1.ObjectMeta{Name: "data"}}},
	}}
	mutate(s)
	return s
}

// TestHostileInputsAreRefusedAndNothingIsWritten sends, through the real
// gRPC API, objects a careless or hostile client could send: each is refused
// with InvalidArgument naming the field, and its key never reaches etcd.
func TestHostileInputsAreRefusedAndNothingIsWritten(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	etcd := etcdClient(t, s.EtcdURL)
	long := strings.Repeat("a", 300)
	bigAnnotations := map[string]string{"example.com/blob": strings.Repeat("x", 300<<10)} // 300 KiB > 256 KiB
	manyContainers := func(p *v1.Pod) {
		for i := 1; i <= 128; i++ {
			p.Spec.Containers = append(p.Spec.Containers, &v1.Container{Name: fmt.Sprintf("c%d", i), Command: []string{"true"}})
		}
	}
	pods := func(c *client.Client) func(context.Context, *v1.Pod) error {
		return func(ctx context.Context, p *v1.Pod) error { _, err := c.Pods().Create(ctx, p); return err }
	}(s.Client)

	tests := []struct {
		name   string
		key    string // the key the object would have had
		create func(ctx context.Context) error
		field  string // the field path the error must name
	}{
		// Durations.
		{"activeDeadlineSeconds that overflows a duration", "/registry/pods/default/deadline-huge", func(ctx context.Context) error {
			return pods(ctx, hostilePod("deadline-huge", func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = i64(9999999999) }))
		}, "spec.activeDeadlineSeconds"},
		{"negative activeDeadlineSeconds", "/registry/pods/default/deadline-negative", func(ctx context.Context) error {
			return pods(ctx, hostilePod("deadline-negative", func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = i64(-1) }))
		}, "spec.activeDeadlineSeconds"},
		{"terminationGracePeriodSeconds that overflows a duration", "/registry/pods/default/grace-huge", func(ctx context.Context) error {
			return pods(ctx, hostilePod("grace-huge", func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = i64(math.MaxInt64) }))
		}, "spec.terminationGracePeriodSeconds"},
		{"negative terminationGracePeriodSeconds", "/registry/pods/default/grace-negative", func(ctx context.Context) error {
			return pods(ctx, hostilePod("grace-negative", func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = i64(-30) }))
		}, "spec.terminationGracePeriodSeconds"},
		{"liveness probe grace that overflows", "/registry/pods/default/probe-grace", func(ctx context.Context) error {
			return pods(ctx, hostilePod("probe-grace", func(p *v1.Pod) {
				p.Spec.Containers[0].LivenessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, TerminationGracePeriodSeconds: i64(1 << 40)}
			}))
		}, "spec.containers[0].livenessProbe.terminationGracePeriodSeconds"},
		{"tolerationSeconds that wraps to a huge toleration", "/registry/pods/default/toleration", func(ctx context.Context) error {
			return pods(ctx, hostilePod("toleration", func(p *v1.Pod) {
				p.Spec.Tolerations = []*v1.Toleration{{Key: "node.kubernetes.io/unreachable", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: i64(-9999999999)}}
			}))
		}, "spec.tolerations[0].tolerationSeconds"},
		{"activeDeadlineSeconds that overflows in a Deployment template", "/registry/deployments/default/deadline-template", func(ctx context.Context) error {
			_, err := s.Client.Deployments().Create(ctx, hostileDeployment("deadline-template", func(t *v1.PodTemplateSpec) { t.Spec.ActiveDeadlineSeconds = i64(9999999999) }))
			return err
		}, "spec.template.spec.activeDeadlineSeconds"},

		// Quantities.
		{"cpu request whose milli-value overflows", "/registry/pods/default/cpu-huge", func(ctx context.Context) error {
			return pods(ctx, hostilePod("cpu-huge", func(p *v1.Pod) { p.Spec.Containers[0].Resources.Requests["cpu"] = "9223372036854775807" }))
		}, "spec.containers[0].resources.requests[cpu]"},
		{"two cpu requests whose sum overflows", "/registry/pods/default/cpu-sum", func(ctx context.Context) error {
			return pods(ctx, hostilePod("cpu-sum", func(p *v1.Pod) {
				p.Spec.Containers[0].Resources.Requests["cpu"] = "5e15"
				p.Spec.Containers = append(p.Spec.Containers, &v1.Container{Name: "d", Command: []string{"true"},
					Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": "5e15"}}})
			}))
		}, "spec.containers[1].resources.requests[cpu]"},
		{"memory limit of 100Ei", "/registry/pods/default/memory-huge", func(ctx context.Context) error {
			return pods(ctx, hostilePod("memory-huge", func(p *v1.Pod) {
				p.Spec.Containers[0].Resources.Limits = map[string]string{"memory": "100Ei"}
			}))
		}, "spec.containers[0].resources.limits[memory]"},
		{"node capacity whose milli-value overflows", "/registry/nodes/node-huge", func(ctx context.Context) error {
			_, err := s.Client.Nodes().Create(ctx, &v1.Node{Metadata: &v1.ObjectMeta{Name: "node-huge"},
				Status: &v1.NodeStatus{Capacity: map[string]string{"cpu": "1e19", "memory": "8Gi", "pods": "110"}}})
			return err
		}, "status.capacity[cpu]"},

		// Names in templates and names controllers derive.
		{"300-character name in a Deployment template", "/registry/deployments/default/long-template-name", func(ctx context.Context) error {
			_, err := s.Client.Deployments().Create(ctx, hostileDeployment("long-template-name", func(t *v1.PodTemplateSpec) { t.Metadata.Name = long }))
			return err
		}, "spec.template.metadata.name"},
		{"300-character volumeClaimTemplate name", "/registry/statefulsets/default/long-claim", func(ctx context.Context) error {
			_, err := s.Client.StatefulSets().Create(ctx, hostileStatefulSet("long-claim", func(s *v1.StatefulSet) { s.Spec.VolumeClaimTemplates[0].Metadata.Name = long }))
			return err
		}, "spec.volumeClaimTemplates[0].metadata.name"},
		{"StatefulSet name whose pods' revision label cannot fit", "/registry/statefulsets/default/" + strings.Repeat("s", 60), func(ctx context.Context) error {
			_, err := s.Client.StatefulSets().Create(ctx, hostileStatefulSet(strings.Repeat("s", 60), func(*v1.StatefulSet) {}))
			return err
		}, "metadata.name"},
		{"Deployment name whose ReplicaSet names cannot fit", "/registry/deployments/default/" + strings.Repeat("d", 250), func(ctx context.Context) error {
			_, err := s.Client.Deployments().Create(ctx, hostileDeployment(strings.Repeat("d", 250), func(*v1.PodTemplateSpec) {}))
			return err
		}, "metadata.name"},

		// Paths that leave the pod's folder on the host.
		{"workingDir with ..", "/registry/pods/default/workdir", func(ctx context.Context) error {
			return pods(ctx, hostilePod("workdir", func(p *v1.Pod) { p.Spec.Containers[0].WorkingDir = "../../../etc" }))
		}, "spec.containers[0].workingDir"},
		{"claimName ../x", "/registry/pods/default/claimname", func(ctx context.Context) error {
			return pods(ctx, hostilePod("claimname", func(p *v1.Pod) {
				p.Spec.Volumes = []*v1.Volume{{Name: "v", PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "../x"}}}
			}))
		}, "spec.volumes[0].persistentVolumeClaim.claimName"},
		{"mountPath with ..", "/registry/pods/default/mountpath", func(ctx context.Context) error {
			return pods(ctx, hostilePod("mountpath", func(p *v1.Pod) {
				p.Spec.Volumes = []*v1.Volume{{Name: "v", EmptyDir: &v1.EmptyDirVolumeSource{}}}
				p.Spec.Containers[0].VolumeMounts = []*v1.VolumeMount{{Name: "v", MountPath: "../../escape"}}
			}))
		}, "spec.containers[0].volumeMounts[0].mountPath"},

		// Sizes.
		{"annotations over 256 KiB", "/registry/pods/default/annotations", func(ctx context.Context) error {
			return pods(ctx, hostilePod("annotations", func(p *v1.Pod) { p.Metadata.Annotations = bigAnnotations }))
		}, "metadata.annotations"},
		{"annotations over 256 KiB in a template", "/registry/deployments/default/template-annotations", func(ctx context.Context) error {
			_, err := s.Client.Deployments().Create(ctx, hostileDeployment("template-annotations", func(t *v1.PodTemplateSpec) { t.Metadata.Annotations = bigAnnotations }))
			return err
		}, "spec.template.metadata.annotations"},
		{"bad label value", "/registry/pods/default/label", func(ctx context.Context) error {
			return pods(ctx, hostilePod("label", func(p *v1.Pod) { p.Metadata.Labels["app"] = "not a label value!" }))
		}, "metadata.labels"},
		{"64-character label value in a StatefulSet template", "/registry/statefulsets/default/template-label", func(ctx context.Context) error {
			_, err := s.Client.StatefulSets().Create(ctx, hostileStatefulSet("template-label", func(s *v1.StatefulSet) {
				s.Spec.Template.Metadata.Labels["tier"] = strings.Repeat("t", 64)
			}))
			return err
		}, "spec.template.metadata.labels"},
		{"129 containers", "/registry/pods/default/containers", func(ctx context.Context) error {
			return pods(ctx, hostilePod("containers", manyContainers))
		}, "spec.containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.create(ctx(t))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error = %v, want InvalidArgument", err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.field+":") {
				t.Errorf("error %.300q does not name %s", msg, tt.field)
			}
			resp, err := etcd.Get(ctx(t), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Kvs) != 0 {
				t.Errorf("refused object was written to etcd at %s", tt.key)
			}
		})
	}
}

// TestHostileDeleteGracePeriod: a delete's gracePeriodSeconds is bounded
// like the pod's own (a huge one would overflow the deletionTimestamp) and a
// negative one means 1, as in Kubernetes.
func TestHostileDeleteGracePeriod(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	etcd := etcdClient(t, s.EtcdURL)
	pods := s.Client.Pods()
	for _, name := range []string{"huge", "negative"} {
		p := pod(name, nil)
		p.Spec.NodeName = "node-1"
		if _, err := pods.Create(ctx(t), p); err != nil {
			t.Fatal(err)
		}
	}
	before, err := etcd.Get(ctx(t), "/registry/pods/default/huge")
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("pod not in etcd: %v", err)
	}
	_, err = pods.Delete(ctx(t), "default", "huge", &v1.DeleteOptions{GracePeriodSeconds: i64(math.MaxInt64)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "gracePeriodSeconds") {
		t.Fatalf("delete with gracePeriodSeconds MaxInt64: %v, want InvalidArgument naming gracePeriodSeconds", err)
	}
	after, err := etcd.Get(ctx(t), "/registry/pods/default/huge")
	if err != nil || len(after.Kvs) != 1 || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatalf("a refused delete changed the pod in etcd: %v", err)
	}

	d, err := pods.Delete(ctx(t), "default", "negative", &v1.DeleteOptions{GracePeriodSeconds: i64(-5)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Metadata.GetDeletionGracePeriodSeconds() != 1 {
		t.Errorf("negative grace became %d, want 1", d.Metadata.GetDeletionGracePeriodSeconds())
	}
}

// TestGeneratedNamesFit: a long generateName (a ReplicaSet's, for its pods:
// "<name>-" with a name of up to 253 characters) is truncated as Kubernetes'
// name generator does, so the pod is created rather than refused for ever.
func TestGeneratedNamesFit(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	p := pod("", nil)
	p.Metadata.GenerateName = strings.Repeat("r", 253) + "-"
	created, err := s.Client.Pods().Create(ctx(t), p)
	if err != nil {
		t.Fatalf("pod with a 254-character generateName: %v", err)
	}
	if n := created.Metadata.Name; len(n) != 63 || !strings.HasPrefix(n, strings.Repeat("r", 58)) {
		t.Errorf("generated name %q (%d characters), want 58 characters of the prefix and 5 random", n, len(n))
	}
}

// TestHostileNodeStatusAndLegacyObjects: a status update is validated like
// any write (a kubelet cannot report a capacity that wraps negative), and an
// object stored before the bounds existed is not stuck: its finalizer can
// still be removed, so its delete completes.
func TestHostileNodeStatusAndLegacyObjects(t *testing.T) {
	s := apiservertest.Start(t, apiservertest.Options{})
	etcd := etcdClient(t, s.EtcdURL)
	nodes := s.Client.Nodes()
	n, err := nodes.Create(ctx(t), &v1.Node{Metadata: &v1.ObjectMeta{Name: "node-1"},
		Status: &v1.NodeStatus{Capacity: map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"}}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := etcd.Get(ctx(t), "/registry/nodes/node-1")
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("node not in etcd: %v", err)
	}
	n.Status.Capacity["cpu"] = "9223372036854775807"
	_, err = nodes.UpdateStatus(ctx(t), n)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "status.capacity[cpu]") {
		t.Fatalf("status update with an overflowing cpu capacity: %v, want InvalidArgument naming status.capacity[cpu]", err)
	}
	after, err := etcd.Get(ctx(t), "/registry/nodes/node-1")
	if err != nil || len(after.Kvs) != 1 || after.Kvs[0].ModRevision != before.Kvs[0].ModRevision {
		t.Fatalf("a refused status update changed the node in etcd: %v", err)
	}

	// A pod stored by an older apiserver with an activeDeadlineSeconds the
	// bounds now refuse, held by a finalizer.
	legacy := pod("legacy", nil)
	legacy.Metadata.Namespace = "default"
	legacy.Metadata.Uid = "legacy-uid"
	legacy.Metadata.Finalizers = []string{"example.com/hold"}
	legacy.Spec.ActiveDeadlineSeconds = i64(9999999999)
	api.Default(legacy)
	api.SetTypeMeta(legacy, api.KindOf(legacy))
	data, err := api.Encode(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Put(ctx(t), "/registry/pods/default/legacy", string(data)); err != nil {
		t.Fatal(err)
	}
	pods := s.Client.Pods()
	if _, err := pods.Delete(ctx(t), "default", "legacy", nil); err != nil {
		t.Fatalf("delete of a legacy pod: %v", err)
	}
	var cur *v1.Pod
	if err := pollUntil(t, func() (bool, error) {
		cur, err = pods.Get(ctx(t), "default", "legacy")
		return err == nil && cur.Metadata.DeletionTimestamp != nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	cur.Metadata.Finalizers = nil
	if _, err := pods.Update(ctx(t), cur); err != nil && status.Code(err) != codes.NotFound {
		t.Fatalf("removing the finalizer of a legacy pod: %v", err)
	}
	if resp, _ := etcd.Get(ctx(t), "/registry/pods/default/legacy"); len(resp.Kvs) != 0 {
		t.Errorf("legacy pod still in etcd after its finalizer went")
	}
}

// pollUntil polls cond every 50ms for up to 30s.
func pollUntil(t *testing.T, cond func() (bool, error)) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
