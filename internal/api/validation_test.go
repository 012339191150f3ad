package api

import (
	"strings"
	"testing"

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
