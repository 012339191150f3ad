package api

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

func validPod() *v1.Pod {
	return &v1.Pod{
		ApiVersion: "v1", Kind: "Pod",
		Metadata: &v1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: &v1.PodSpec{Containers: []*v1.Container{{
			Name: "main", Command: []string{"sleep", "10"},
			Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}, Limits: map[string]string{"cpu": "1", "memory": "1Gi"}},
		}}},
	}
}

func TestDefaultPod(t *testing.T) {
	p := validPod()
	p.Spec.Containers[0].ReadinessProbe = &v1.Probe{HttpGet: &v1.HTTPGetAction{Port: "80"}}
	Default(p)
	if p.Metadata.Namespace != "default" {
		t.Errorf("namespace = %q, want default", p.Metadata.Namespace)
	}
	if p.Spec.RestartPolicy != "Always" {
		t.Errorf("restartPolicy = %q, want Always", p.Spec.RestartPolicy)
	}
	if p.Spec.GetTerminationGracePeriodSeconds() != 30 {
		t.Errorf("terminationGracePeriodSeconds = %d, want 30", p.Spec.GetTerminationGracePeriodSeconds())
	}
	pr := p.Spec.Containers[0].ReadinessProbe
	if pr.PeriodSeconds != 10 || pr.TimeoutSeconds != 1 || pr.FailureThreshold != 3 || pr.SuccessThreshold != 1 || pr.HttpGet.Path != "/" || pr.HttpGet.Scheme != "HTTP" {
		t.Errorf("probe defaults wrong: %v", pr)
	}
	// An explicit 0 grace period is kept, not defaulted.
	q := validPod()
	zero := int64(0)
	q.Spec.TerminationGracePeriodSeconds = &zero
	Default(q)
	if q.Spec.GetTerminationGracePeriodSeconds() != 0 {
		t.Errorf("explicit grace 0 became %d", q.Spec.GetTerminationGracePeriodSeconds())
	}
}

func TestDefaultDeployment(t *testing.T) {
	d := &v1.Deployment{Metadata: &v1.ObjectMeta{Name: "d"}, Spec: &v1.DeploymentSpec{}}
	Default(d)
	s := d.Spec
	if s.GetReplicas() != 1 || s.Strategy.Type != "RollingUpdate" || s.Strategy.RollingUpdate.MaxSurge != "25%" || s.Strategy.RollingUpdate.MaxUnavailable != "25%" || s.GetRevisionHistoryLimit() != 10 || s.GetProgressDeadlineSeconds() != 600 {
		t.Errorf("deployment defaults wrong: %v", s)
	}
}

func TestValidatePod(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *v1.Pod)
		want   []string // every field path that must be reported
	}{
		{name: "valid pod", mutate: func(*v1.Pod) {}},
		{name: "name not DNS-1123", mutate: func(p *v1.Pod) { p.Metadata.Name = "Web_1" }, want: []string{"metadata.name"}},
		{name: "no containers", mutate: func(p *v1.Pod) { p.Spec.Containers = nil }, want: []string{"spec.containers"}},
		{name: "container without name and command", mutate: func(p *v1.Pod) { p.Spec.Containers[0].Name = ""; p.Spec.Containers[0].Command = nil },
			want: []string{"spec.containers[0].name", "spec.containers[0].command"}},
		{name: "duplicate container names", mutate: func(p *v1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, &v1.Container{Name: "main", Command: []string{"x"}})
		}, want: []string{"spec.containers[1].name"}},
		{name: "bad quantity", mutate: func(p *v1.Pod) { p.Spec.Containers[0].Resources.Requests["cpu"] = "lots" }, want: []string{"spec.containers[0].resources.requests[cpu]"}},
		{name: "request above limit", mutate: func(p *v1.Pod) { p.Spec.Containers[0].Resources.Requests["memory"] = "2Gi" }, want: []string{"spec.containers[0].resources.requests[memory]"}},
		{name: "bad restartPolicy", mutate: func(p *v1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, want: []string{"spec.restartPolicy"}},
		{name: "bad label key and value", mutate: func(p *v1.Pod) { p.Metadata.Labels = map[string]string{"-bad": "ok", "k": "bad value!"} }, want: []string{"metadata.labels"}},
		{name: "negative grace", mutate: func(p *v1.Pod) { g := int64(-1); p.Spec.TerminationGracePeriodSeconds = &g }, want: []string{"spec.terminationGracePeriodSeconds"}},
		{name: "probe with two handlers", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, TcpSocket: &v1.TCPSocketAction{Port: "80"}, SuccessThreshold: 1}
		}, want: []string{"spec.containers[0].livenessProbe"}},
		{name: "probe naming an unknown port", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &v1.Probe{HttpGet: &v1.HTTPGetAction{Port: "web"}}
		}, want: []string{"spec.containers[0].readinessProbe.httpGet.port"}},
		{name: "toleration with bad operator", mutate: func(p *v1.Pod) {
			p.Spec.Tolerations = []*v1.Toleration{{Key: "k", Operator: "Maybe"}}
		}, want: []string{"spec.tolerations[0].operator"}},

		// Bounds: durations, quantities, sizes, paths.
		{name: "activeDeadlineSeconds that overflows a duration", mutate: func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr(int64(9999999999)) },
			want: []string{"spec.activeDeadlineSeconds", "between 1 and 2147483647"}},
		{name: "activeDeadlineSeconds at Kubernetes' bound", mutate: func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr(int64(math.MaxInt32)) }},
		{name: "negative activeDeadlineSeconds", mutate: func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr(int64(-5)) }, want: []string{"spec.activeDeadlineSeconds"}},
		{name: "terminationGracePeriodSeconds that overflows a duration", mutate: func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr(int64(math.MaxInt64 / 1000)) },
			want: []string{"spec.terminationGracePeriodSeconds", "between 0 and 2147483647"}},
		{name: "probe terminationGracePeriodSeconds 0 or huge", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, TerminationGracePeriodSeconds: ptr(int64(0))}
			p.Spec.Containers[0].StartupProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, TerminationGracePeriodSeconds: ptr(int64(1) << 40)}
		}, want: []string{"spec.containers[0].livenessProbe.terminationGracePeriodSeconds", "spec.containers[0].startupProbe.terminationGracePeriodSeconds"}},
		{name: "readiness probe with terminationGracePeriodSeconds", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, TerminationGracePeriodSeconds: ptr(int64(5))}
		}, want: []string{"spec.containers[0].readinessProbe.terminationGracePeriodSeconds"}},
		{name: "negative probe period and threshold", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &v1.Probe{Exec: &v1.ExecAction{Command: []string{"true"}}, PeriodSeconds: -1, FailureThreshold: -3}
		}, want: []string{"spec.containers[0].readinessProbe.periodSeconds", "spec.containers[0].readinessProbe.failureThreshold"}},
		{name: "tolerationSeconds that overflows a duration either way", mutate: func(p *v1.Pod) {
			p.Spec.Tolerations = []*v1.Toleration{{Key: "k", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(int64(9999999999))},
				{Key: "k", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(int64(-9999999999))}}
		}, want: []string{"spec.tolerations[0].tolerationSeconds", "spec.tolerations[1].tolerationSeconds"}},
		{name: "negative tolerationSeconds evicts at once, as Kubernetes", mutate: func(p *v1.Pod) {
			p.Spec.Tolerations = []*v1.Toleration{{Key: "k", Operator: "Exists", Effect: "NoExecute", TolerationSeconds: ptr(int64(-1))}}
		}},
		{name: "preStop sleep longer than the grace period", mutate: func(p *v1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptr(int64(10))
			p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: math.MaxInt64}}}
		}, want: []string{"spec.containers[0].lifecycle.preStop.sleep.seconds"}},
		{name: "cpu request whose milli-value overflows", mutate: func(p *v1.Pod) {
			r := p.Spec.Containers[0].Resources
			r.Requests["cpu"], r.Limits["cpu"] = "9223372036854775807", "9223372036854775807"
		}, want: []string{"spec.containers[0].resources.requests[cpu]", "spec.containers[0].resources.limits[cpu]", "must be less than or equal to 9223372036854775807m"}},
		{name: "memory limit of 100Ei", mutate: func(p *v1.Pod) { p.Spec.Containers[0].Resources.Limits["memory"] = "100Ei" },
			want: []string{"spec.containers[0].resources.limits[memory]"}},
		{name: "two cpu requests whose sum overflows", mutate: func(p *v1.Pod) {
			p.Spec.Containers[0].Resources = &v1.ResourceRequirements{Requests: map[string]string{"cpu": "5000000000000000"}}
			p.Spec.Containers = append(p.Spec.Containers, &v1.Container{Name: "second", Command: []string{"true"},
				Resources: &v1.ResourceRequirements{Requests: map[string]string{"cpu": "5000000000000000"}}})
		}, want: []string{"spec.containers[1].resources.requests[cpu]", "add up to more than"}},
		{name: "largest quantity whose milli-value fits", mutate: func(p *v1.Pod) {
			r := p.Spec.Containers[0].Resources
			r.Requests["cpu"], r.Limits["cpu"] = "9223372036854775807m", "9223372036854775807m"
		}},
		{name: "too many containers", mutate: func(p *v1.Pod) {
			for i := range MaxContainersPerPod {
				p.Spec.Containers = append(p.Spec.Containers, &v1.Container{Name: fmt.Sprintf("c%d", i), Command: []string{"true"}})
			}
		}, want: []string{"spec.containers", "must have at most 128 items"}},
		{name: "workingDir leaving the pod folder", mutate: func(p *v1.Pod) { p.Spec.Containers[0].WorkingDir = "data/../../other-pod" },
			want: []string{"spec.containers[0].workingDir", "must not contain '..'"}},
		{name: "absolute workingDir with ..", mutate: func(p *v1.Pod) { p.Spec.Containers[0].WorkingDir = "/tmp/../etc" }, want: []string{"spec.containers[0].workingDir"}},
		{name: "workingDir with dots in names is fine", mutate: func(p *v1.Pod) { p.Spec.Containers[0].WorkingDir = "a..b/.cache" }},
		{name: "mountPath with .. and a duplicate", mutate: func(p *v1.Pod) {
			p.Spec.Volumes = []*v1.Volume{{Name: "v", EmptyDir: &v1.EmptyDirVolumeSource{}}}
			p.Spec.Containers[0].VolumeMounts = []*v1.VolumeMount{{Name: "v", MountPath: "../up"}, {Name: "v", MountPath: "/data"}, {Name: "v", MountPath: "/data/"}}
		}, want: []string{"spec.containers[0].volumeMounts[0].mountPath", "spec.containers[0].volumeMounts[2].mountPath"}},
		{name: "relative and absolute mountPath are one link", mutate: func(p *v1.Pod) {
			p.Spec.Volumes = []*v1.Volume{{Name: "v", EmptyDir: &v1.EmptyDirVolumeSource{}}, {Name: "w", EmptyDir: &v1.EmptyDirVolumeSource{}}}
			p.Spec.Containers[0].VolumeMounts = []*v1.VolumeMount{{Name: "v", MountPath: "data"}, {Name: "w", MountPath: "/data"}}
		}, want: []string{"spec.containers[0].volumeMounts[1].mountPath", "must be unique"}},
		{name: "annotations over 256 KiB", mutate: func(p *v1.Pod) { p.Metadata.Annotations = map[string]string{"a": strings.Repeat("x", 256<<10)} },
			want: []string{"metadata.annotations"}},
		{name: "label value over 63 characters", mutate: func(p *v1.Pod) { p.Metadata.Labels["app"] = strings.Repeat("x", 64) }, want: []string{"metadata.labels"}},
		// Kubernetes masks a trailing '-' of a prefix by dropping two
		// characters and adding one, so "<253 characters>-" passes, one more
		// does not.
		{name: "generateName over 254 characters", mutate: func(p *v1.Pod) { p.Metadata.GenerateName = strings.Repeat("r", 254) + "-" },
			want: []string{"metadata.generateName", "must be no more than 253 characters"}},
		{name: "generateName with a bad character after the kept 58", mutate: func(p *v1.Pod) { p.Metadata.GenerateName = strings.Repeat("r", 60) + "_x-" },
			want: []string{"metadata.generateName"}},
		{name: "generateName of a 253-character ReplicaSet", mutate: func(p *v1.Pod) { p.Metadata.Name, p.Metadata.GenerateName = "", strings.Repeat("r", 253)+"-" }},
		{name: "generateName that is no name prefix", mutate: func(p *v1.Pod) { p.Metadata.GenerateName = "Bad_" }, want: []string{"metadata.generateName"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPod()
			tt.mutate(p)
			Default(p)
			errs := Validate(p)
			if len(tt.want) == 0 && len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			got := errs.ToAggregate()
			for _, w := range tt.want {
				if got == nil || !strings.Contains(got.Error(), w) {
					t.Errorf("errors %v do not name %s", got, w)
				}
			}
		})
	}
}

func TestValidateDeployment(t *testing.T) {
	base := func() *v1.Deployment {
		return &v1.Deployment{Metadata: &v1.ObjectMeta{Name: "d"}, Spec: &v1.DeploymentSpec{
			Selector: &v1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "d"}}, Spec: validPod().Spec},
		}}
	}
	tests := []struct {
		name   string
		mutate func(d *v1.Deployment)
		want   string
	}{
		{name: "valid", mutate: func(*v1.Deployment) {}},
		{name: "selector does not match template", mutate: func(d *v1.Deployment) { d.Spec.Selector.MatchLabels["app"] = "other" }, want: "spec.template.metadata.labels"},
		{name: "maxSurge and maxUnavailable both 0", mutate: func(d *v1.Deployment) {
			d.Spec.Strategy = &v1.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &v1.RollingUpdateDeployment{MaxSurge: "0", MaxUnavailable: "0%"}}
		}, want: "spec.strategy.rollingUpdate.maxUnavailable"},
		{name: "negative replicas", mutate: func(d *v1.Deployment) { r := int32(-1); d.Spec.Replicas = &r }, want: "spec.replicas"},
		{name: "bad percent", mutate: func(d *v1.Deployment) {
			d.Spec.Strategy = &v1.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &v1.RollingUpdateDeployment{MaxSurge: "ten%"}}
		}, want: "spec.strategy.rollingUpdate.maxSurge"},
		{name: "maxSurge beyond int32", mutate: func(d *v1.Deployment) {
			d.Spec.Strategy = &v1.DeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &v1.RollingUpdateDeployment{MaxSurge: "9999999999"}}
		}, want: "spec.strategy.rollingUpdate.maxSurge"},
		{name: "300-character template name", mutate: func(d *v1.Deployment) { d.Spec.Template.Metadata.Name = strings.Repeat("a", 300) }, want: "spec.template.metadata.name"},
		{name: "template annotations over 256 KiB", mutate: func(d *v1.Deployment) {
			d.Spec.Template.Metadata.Annotations = map[string]string{"big": strings.Repeat("x", 257<<10)}
		}, want: "spec.template.metadata.annotations"},
		{name: "template label value over 63 characters", mutate: func(d *v1.Deployment) {
			d.Spec.Template.Metadata.Labels["tier"] = strings.Repeat("x", 64)
		}, want: "spec.template.metadata.labels"},
		{name: "template activeDeadlineSeconds that overflows", mutate: func(d *v1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptr(int64(9999999999)) },
			want: "spec.template.spec.activeDeadlineSeconds"},
		{name: "negative minReadySeconds", mutate: func(d *v1.Deployment) { d.Spec.MinReadySeconds = -1 }, want: "spec.minReadySeconds"},
		{name: "negative progressDeadlineSeconds", mutate: func(d *v1.Deployment) { d.Spec.MinReadySeconds = -10; d.Spec.ProgressDeadlineSeconds = ptr(int32(-5)) },
			want: "spec.progressDeadlineSeconds: Invalid value: -5: must be greater than 0"},
		{name: "name leaving no room for the ReplicaSet hash", mutate: func(d *v1.Deployment) { d.Metadata.Name = strings.Repeat("d", 243) }, want: "metadata.name"},
		{name: "longest name whose ReplicaSets fit", mutate: func(d *v1.Deployment) { d.Metadata.Name = strings.Repeat("d", 242) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := base()
			tt.mutate(d)
			Default(d)
			errs := Validate(d)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if agg := errs.ToAggregate(); agg == nil || !strings.Contains(agg.Error(), tt.want) {
				t.Errorf("errors %v do not name %s", agg, tt.want)
			}
		})
	}
}

func validStatefulSet() *v1.StatefulSet {
	return &v1.StatefulSet{Metadata: &v1.ObjectMeta{Name: "web"}, Spec: &v1.StatefulSetSpec{
		Selector:             &v1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template:             &v1.PodTemplateSpec{Metadata: &v1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: validPod().Spec},
		VolumeClaimTemplates: []*v1.PersistentVolumeClaimTemplate{{Metadata: &v1.ObjectMeta{Name: "data"}}},
	}}
}

func TestValidateStatefulSet(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *v1.StatefulSet)
		want   []string
	}{
		{name: "valid", mutate: func(*v1.StatefulSet) {}},
		{name: "longest name whose pods, revisions and claims fit", mutate: func(s *v1.StatefulSet) {
			s.Metadata.Name = strings.Repeat("s", 52)
			s.Spec.VolumeClaimTemplates[0].Metadata.Name = strings.Repeat("c", 63)
			s.Spec.Replicas = ptr(int32(math.MaxInt32))
			s.Spec.Ordinals = &v1.StatefulSetOrdinals{Start: math.MaxInt32}
		}},
		{name: "name whose revision label would pass 63 characters", mutate: func(s *v1.StatefulSet) { s.Metadata.Name = strings.Repeat("s", 53) },
			want: []string{"metadata.name", "no more than 52 characters"}},
		{name: "name that is a subdomain, not a label", mutate: func(s *v1.StatefulSet) { s.Metadata.Name = "web.db" }, want: []string{"metadata.name"}},
		{name: "300-character claim template name", mutate: func(s *v1.StatefulSet) { s.Spec.VolumeClaimTemplates[0].Metadata.Name = strings.Repeat("c", 300) },
			want: []string{"spec.volumeClaimTemplates[0].metadata.name"}},
		{name: "claim template with a bad label", mutate: func(s *v1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Metadata.Labels = map[string]string{"k": strings.Repeat("v", 64)}
		}, want: []string{"spec.volumeClaimTemplates[0].metadata.labels"}},
		{name: "300-character template name", mutate: func(s *v1.StatefulSet) { s.Spec.Template.Metadata.Name = strings.Repeat("t", 300) },
			want: []string{"spec.template.metadata.name"}},
		{name: "negative ranges", mutate: func(s *v1.StatefulSet) {
			s.Spec.Replicas = ptr(int32(-1))
			s.Spec.MinReadySeconds = -1
			s.Spec.RevisionHistoryLimit = ptr(int32(-1))
			s.Spec.Ordinals = &v1.StatefulSetOrdinals{Start: -1}
		}, want: []string{"spec.replicas", "spec.minReadySeconds", "spec.revisionHistoryLimit", "spec.ordinals.start"}},
		{name: "template terminationGracePeriodSeconds that overflows", mutate: func(s *v1.StatefulSet) {
			s.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr(int64(1) << 40)
		}, want: []string{"spec.template.spec.terminationGracePeriodSeconds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validStatefulSet()
			tt.mutate(s)
			Default(s)
			errs := Validate(s)
			if len(tt.want) == 0 && len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			got := errs.ToAggregate()
			for _, w := range tt.want {
				if got == nil || !strings.Contains(got.Error(), w) {
					t.Errorf("errors %v do not name %s", got, w)
				}
			}
		})
	}
}

func TestValidateNodeQuantities(t *testing.T) {
	n := &v1.Node{Metadata: &v1.ObjectMeta{Name: "n"}, Status: &v1.NodeStatus{
		Capacity:    map[string]string{"cpu": "9223372036854775807", "memory": "-1Gi", "pods": "110"},
		Allocatable: map[string]string{"cpu": "4", "memory": "8Gi", "pods": "110"},
	}}
	agg := Validate(n).ToAggregate()
	for _, w := range []string{"status.capacity[cpu]", "status.capacity[memory]"} {
		if agg == nil || !strings.Contains(agg.Error(), w) {
			t.Errorf("errors %v do not name %s", agg, w)
		}
	}
	if agg != nil && strings.Contains(agg.Error(), "allocatable") {
		t.Errorf("a sane allocatable was refused: %v", agg)
	}
}

func TestValidateDeleteOptions(t *testing.T) {
	for _, tt := range []struct {
		grace *int64
		ok    bool
	}{{nil, true}, {ptr(int64(0)), true}, {ptr(int64(-1)), true}, {ptr(int64(math.MaxInt32)), true}, {ptr(int64(math.MaxInt32) + 1), false}, {ptr(int64(math.MaxInt64)), false}} {
		errs := ValidateDeleteOptions(&v1.DeleteOptions{GracePeriodSeconds: tt.grace})
		if ok := len(errs) == 0; ok != tt.ok {
			t.Errorf("grace %v: errors %v, want ok=%v", tt.grace, errs, tt.ok)
		}
		if len(errs) > 0 && errs[0].Field != "gracePeriodSeconds" {
			t.Errorf("grace %v: error names %q", tt.grace, errs[0].Field)
		}
	}
	if errs := ValidateDeleteOptions(nil); len(errs) > 0 {
		t.Errorf("nil options: %v", errs)
	}
}

func TestGenerateNameTruncatesAsKubernetes(t *testing.T) {
	long := strings.Repeat("r", 250) + "-"
	got := GenerateName(long, "abcde")
	if len(got) != 63 || !strings.HasSuffix(got, "abcde") || !strings.HasPrefix(got, "rrr") {
		t.Errorf("GenerateName(250 chars) = %q (%d characters), want 58 of the prefix and the suffix", got, len(got))
	}
	if got := GenerateName("web-", "abcde"); got != "web-abcde" {
		t.Errorf("GenerateName(web-) = %q", got)
	}
}

func TestSelectors(t *testing.T) {
	podKind, _ := Lookup("pods")
	pod := validPod()
	Default(pod)
	pod.Spec.NodeName = "node-1"
	pod.Status = &v1.PodStatus{Phase: "Running"}
	tests := []struct {
		labels, fields string
		want           bool
	}{
		{"app=web", "", true},
		{"app in (web,db)", "", true},
		{"app!=web", "", false},
		{"!app", "", false},
		{"", "spec.nodeName=node-1", true},
		{"", "spec.nodeName=node-2", false},
		{"", "status.phase=Running,metadata.name=web", true},
		{"", "status.phase!=Running", false},
		{"app=web", "spec.nodeName=", false},
	}
	for _, tt := range tests {
		sel, err := NewSelector(podKind, "default", tt.labels, tt.fields)
		if err != nil {
			t.Fatalf("%q %q: %v", tt.labels, tt.fields, err)
		}
		if got := sel.Matches(pod); got != tt.want {
			t.Errorf("labels %q fields %q: match = %v, want %v", tt.labels, tt.fields, got, tt.want)
		}
	}
	if _, err := NewSelector(podKind, "", "", "spec.bogus=x"); err == nil || !strings.Contains(err.Error(), "spec.bogus") {
		t.Errorf("unsupported field selector: err = %v", err)
	}
	if _, err := NewSelector(podKind, "", "a==,", ""); err == nil {
		t.Error("malformed label selector accepted")
	}
	other, _ := NewSelector(podKind, "kube-system", "", "")
	if other.Matches(pod) {
		t.Error("a selector for another namespace matched")
	}
}

func TestLookup(t *testing.T) {
	for _, n := range []string{"pods", "pod", "po", "Pod", "deploy", "rs", "no", "statefulsets"} {
		if _, err := Lookup(n); err != nil {
			t.Errorf("Lookup(%q): %v", n, err)
		}
	}
	if _, err := Lookup("widgets"); err == nil || !strings.Contains(err.Error(), "pods") {
		t.Errorf("Lookup(widgets) = %v, want an error listing known resources", err)
	}
}

// An object stored before a bound existed is not stuck: updates that keep
// its old problem pass (its finalizers can go), new problems are refused.
func TestValidateUpdateRatchetsStoredProblems(t *testing.T) {
	legacy := validStatefulSet()
	legacy.Metadata.Name = strings.Repeat("s", 60)
	legacy.Metadata.Finalizers = []string{"orphan"}
	Default(legacy)
	if len(Validate(legacy)) == 0 {
		t.Fatal("the legacy set is valid; the test needs one that is not")
	}
	next := proto.Clone(legacy).(*v1.StatefulSet)
	next.Metadata.Finalizers = nil
	next.Spec.Replicas = ptr(int32(3))
	if errs := ValidateUpdate(next, legacy); len(errs) > 0 {
		t.Errorf("removing a finalizer of a legacy set: %v", errs)
	}
	next.Spec.MinReadySeconds = -1
	if agg := ValidateUpdate(next, legacy).ToAggregate(); agg == nil || !strings.Contains(agg.Error(), "spec.minReadySeconds") || strings.Contains(agg.Error(), "metadata.name") {
		t.Errorf("a new problem on a legacy set: %v, want spec.minReadySeconds only", agg)
	}

	pod := validPod()
	pod.Spec.ActiveDeadlineSeconds = ptr(int64(9999999999))
	Default(pod)
	p2 := proto.Clone(pod).(*v1.Pod)
	p2.Metadata.Labels["x"] = "y"
	if errs := ValidateUpdate(p2, pod); len(errs) > 0 {
		t.Errorf("relabelling a legacy pod: %v", errs)
	}
	// The same field, still invalid, with another value: ratcheted on the
	// field and the kind of error, not the message (which has the value).
	p2.Spec.ActiveDeadlineSeconds = ptr(int64(8888888888))
	if errs := ValidateUpdate(p2, pod); len(errs) > 0 {
		t.Errorf("a legacy pod's overflowing deadline changed to another overflowing one: %v", errs)
	}
	ok := validPod()
	Default(ok)
	p3 := proto.Clone(ok).(*v1.Pod)
	p3.Spec.ActiveDeadlineSeconds = ptr(int64(8888888888))
	if agg := ValidateUpdate(p3, ok).ToAggregate(); agg == nil || !strings.Contains(agg.Error(), "spec.activeDeadlineSeconds") {
		t.Errorf("a new overflowing deadline was accepted: %v", agg)
	}

	node := &v1.Node{Metadata: &v1.ObjectMeta{Name: "n"}, Status: &v1.NodeStatus{Capacity: map[string]string{"cpu": "4"}}}
	n2 := proto.Clone(node).(*v1.Node)
	n2.Status.Capacity["cpu"] = "9223372036854775807"
	if agg := ValidateUpdate(n2, node).ToAggregate(); agg == nil || !strings.Contains(agg.Error(), "status.capacity[cpu]") {
		t.Errorf("an overflowing capacity in a status update: %v", agg)
	}
	// A node stored with an overflowing capacity whose kubelet reports
	// another overflowing value: its heartbeats still go through.
	n3 := proto.Clone(n2).(*v1.Node)
	n3.Status.Capacity["cpu"] = "9223372036854775806"
	if errs := ValidateUpdate(n3, n2); len(errs) > 0 {
		t.Errorf("a legacy node reporting a different overflowing capacity: %v", errs)
	}
	// But another field turning invalid is still refused.
	n3.Status.Capacity["memory"] = "9e30"
	if agg := ValidateUpdate(n3, n2).ToAggregate(); agg == nil || !strings.Contains(agg.Error(), "status.capacity[memory]") || strings.Contains(agg.Error(), "status.capacity[cpu]") {
		t.Errorf("a new overflowing memory capacity on a legacy node: %v, want status.capacity[memory] only", agg)
	}
}
