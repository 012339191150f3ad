package api

import (
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Well-known values shared by the components.
const (
	DefaultNamespace       = "default"
	NodeLeaseNamespace     = "kube-node-lease"
	DefaultSchedulerName   = "default-scheduler"
	DefaultGracePeriodSecs = int64(30)

	// Finalizers the apiserver adds for a delete's propagationPolicy and
	// the garbage collector removes.
	FinalizerOrphan     = "orphan"
	FinalizerForeground = "foregroundDeletion"
)

func ptr[T any](v T) *T { return &v }

// Default fills in what Kubernetes defaults, in place. It is idempotent.
func Default(o Object) {
	m := EnsureMeta(o)
	if k := KindOf(o); k != nil && k.Namespaced && m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	switch x := o.(type) {
	case *v1.Pod:
		if x.Spec == nil {
			x.Spec = &v1.PodSpec{}
		}
		DefaultPodSpec(x.Spec)
	case *v1.ReplicaSet:
		if x.Spec == nil {
			x.Spec = &v1.ReplicaSetSpec{}
		}
		if x.Spec.Replicas == nil {
			x.Spec.Replicas = ptr(int32(1))
		}
		defaultTemplate(x.Spec.Template)
	case *v1.Deployment:
		if x.Spec == nil {
			x.Spec = &v1.DeploymentSpec{}
		}
		s := x.Spec
		if s.Replicas == nil {
			s.Replicas = ptr(int32(1))
		}
		if s.Strategy == nil {
			s.Strategy = &v1.DeploymentStrategy{}
		}
		if s.Strategy.Type == "" {
			s.Strategy.Type = "RollingUpdate"
		}
		if s.Strategy.Type == "RollingUpdate" {
			if s.Strategy.RollingUpdate == nil {
				s.Strategy.RollingUpdate = &v1.RollingUpdateDeployment{}
			}
			if s.Strategy.RollingUpdate.MaxSurge == "" {
				s.Strategy.RollingUpdate.MaxSurge = "25%"
			}
			if s.Strategy.RollingUpdate.MaxUnavailable == "" {
				s.Strategy.RollingUpdate.MaxUnavailable = "25%"
			}
		}
		if s.RevisionHistoryLimit == nil {
			s.RevisionHistoryLimit = ptr(int32(10))
		}
		if s.ProgressDeadlineSeconds == nil {
			s.ProgressDeadlineSeconds = ptr(int32(600))
		}
		defaultTemplate(s.Template)
	case *v1.StatefulSet:
		if x.Spec == nil {
			x.Spec = &v1.StatefulSetSpec{}
		}
		s := x.Spec
		if s.Replicas == nil {
			s.Replicas = ptr(int32(1))
		}
		if s.PodManagementPolicy == "" {
			s.PodManagementPolicy = "OrderedReady"
		}
		if s.UpdateStrategy == nil {
			s.UpdateStrategy = &v1.StatefulSetUpdateStrategy{}
		}
		if s.UpdateStrategy.Type == "" {
			s.UpdateStrategy.Type = "RollingUpdate"
		}
		if s.UpdateStrategy.Type == "RollingUpdate" {
			if s.UpdateStrategy.RollingUpdate == nil {
				s.UpdateStrategy.RollingUpdate = &v1.RollingUpdateStatefulSetStrategy{}
			}
			if s.UpdateStrategy.RollingUpdate.Partition == nil {
				s.UpdateStrategy.RollingUpdate.Partition = ptr(int32(0))
			}
		}
		if s.RevisionHistoryLimit == nil {
			s.RevisionHistoryLimit = ptr(int32(10))
		}
		if s.PersistentVolumeClaimRetentionPolicy == nil {
			s.PersistentVolumeClaimRetentionPolicy = &v1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
		}
		p := s.PersistentVolumeClaimRetentionPolicy
		if p.WhenDeleted == "" {
			p.WhenDeleted = "Retain"
		}
		if p.WhenScaled == "" {
			p.WhenScaled = "Retain"
		}
		defaultTemplate(s.Template)
		defaultClaimTemplates(s)
	case *v1.PersistentVolumeClaim:
		defaultClaim(x)
	}
}

func defaultTemplate(t *v1.PodTemplateSpec) {
	if t == nil {
		return
	}
	if t.Spec == nil {
		t.Spec = &v1.PodSpec{}
	}
	DefaultPodSpec(t.Spec)
}

// DefaultPodSpec applies Kubernetes' pod spec defaults.
func DefaultPodSpec(s *v1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = "Always"
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr(DefaultGracePeriodSecs)
	}
	if s.SchedulerName == "" {
		s.SchedulerName = DefaultSchedulerName
	}
	for _, c := range s.Containers {
		for _, p := range c.Ports {
			if p.Protocol == "" {
				p.Protocol = "TCP"
			}
		}
		for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			defaultProbe(p)
		}
		if c.Lifecycle != nil {
			defaultHandler(c.Lifecycle.PreStop)
			defaultHandler(c.Lifecycle.PostStart)
		}
	}
}

func defaultProbe(p *v1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HttpGet)
}

func defaultHandler(h *v1.LifecycleHandler) {
	if h != nil {
		defaultHTTPGet(h.HttpGet)
	}
}

func defaultHTTPGet(h *v1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = "HTTP"
	}
}

// IsPodTerminal reports a pod in phase Succeeded or Failed: its containers
// are done for good.
func IsPodTerminal(p *v1.Pod) bool {
	ph := p.GetStatus().GetPhase()
	return ph == "Succeeded" || ph == "Failed"
}

// WithoutFinalizer returns finalizers without f, for an update that lets go
// of it (the caller updates a copy, never a cached object).
func WithoutFinalizer(finalizers []string, f string) []string {
	var keep []string
	for _, x := range finalizers {
		if x != f {
			keep = append(keep, x)
		}
	}
	return keep
}
