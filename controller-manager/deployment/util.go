package deployment

import (
	"math"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Annotations and labels of Kubernetes' deployment controller.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	ChangeCauseAnnotation     = "kubernetes.io/change-cause"
	PodTemplateHashLabel      = "pod-template-hash"
	RestartedAtAnnotation     = "kubectl.kubernetes.io/restartedAt"
)

// resolve turns an int-or-percent into a count of total: percents round up
// (surge) or down (unavailable).
func resolve(v string, total int32, roundUp bool) int32 {
	n, pct, err := api.ParseIntOrPercent(v)
	if err != nil {
		return 0
	}
	if !pct {
		return int32(n)
	}
	f := float64(n) * float64(total) / 100
	if roundUp {
		return int32(math.Ceil(f))
	}
	return int32(math.Floor(f))
}

// ResolveFenceposts returns maxSurge and maxUnavailable as counts; if both
// are 0, maxUnavailable is 1 (Kubernetes' rule).
func ResolveFenceposts(d *v1.Deployment) (surge, unavailable int32) {
	ru := d.GetSpec().GetStrategy().GetRollingUpdate()
	if d.GetSpec().GetStrategy().GetType() != "RollingUpdate" || ru == nil {
		return 0, 0
	}
	replicas := d.GetSpec().GetReplicas()
	surge = resolve(ru.GetMaxSurge(), replicas, true)
	unavailable = resolve(ru.GetMaxUnavailable(), replicas, false)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// MaxUnavailable is maxUnavailable clamped to replicas.
func MaxUnavailable(d *v1.Deployment) int32 {
	_, u := ResolveFenceposts(d)
	return min(u, d.GetSpec().GetReplicas())
}

// Revision reads the revision annotation (0 if absent).
func Revision(o api.Object) int64 {
	v, _ := strconv.ParseInt(o.GetMetadata().GetAnnotations()[RevisionAnnotation], 10, 64)
	return v
}

// MaxRevision is the highest revision among the ReplicaSets.
func MaxRevision(rss []*v1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		m = max(m, Revision(rs))
	}
	return m
}

// TemplateWithoutHash is a template minus the pod-template-hash label, the
// form in which a ReplicaSet's template is compared with a Deployment's.
func TemplateWithoutHash(t *v1.PodTemplateSpec) *v1.PodTemplateSpec {
	c := proto.Clone(t).(*v1.PodTemplateSpec)
	if c.Metadata != nil {
		delete(c.Metadata.Labels, PodTemplateHashLabel)
	}
	return c
}

// EqualTemplates compares templates ignoring the pod-template-hash label.
func EqualTemplates(a, b *v1.PodTemplateSpec) bool {
	return proto.Equal(TemplateWithoutHash(a), TemplateWithoutHash(b))
}

// NewRSNewReplicas is how big the new ReplicaSet may become now: within
// replicas + maxSurge pods in all, and no bigger than replicas.
func NewRSNewReplicas(d *v1.Deployment, all []*v1.ReplicaSet, newRS *v1.ReplicaSet) int32 {
	replicas := d.GetSpec().GetReplicas()
	if d.GetSpec().GetStrategy().GetType() == "Recreate" {
		return replicas
	}
	surge, _ := ResolveFenceposts(d)
	current := SumReplicas(all)
	maxTotal := replicas + surge
	if current >= maxTotal {
		return newRS.GetSpec().GetReplicas()
	}
	up := min(maxTotal-current, replicas-newRS.GetSpec().GetReplicas())
	return newRS.GetSpec().GetReplicas() + max(up, 0)
}

// SumReplicas sums spec.replicas.
func SumReplicas(rss []*v1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += rs.GetSpec().GetReplicas()
		}
	}
	return n
}

// SumAvailable sums status.availableReplicas, each capped at the
// ReplicaSet's spec.replicas: pods beyond its size are on their way out
// even if its status, written later, still counts them. Without the cap a
// rollout that just scaled an old ReplicaSet down could count its pods
// twice and go below replicas - maxUnavailable.
func SumAvailable(rss []*v1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += min(rs.GetStatus().GetAvailableReplicas(), rs.GetSpec().GetReplicas())
		}
	}
	return n
}

// MaxScaledDown is how many old pods the rolling update may remove now:
// keep replicas - maxUnavailable available, counting the new ReplicaSet's
// unavailable pods as unavailable.
func MaxScaledDown(d *v1.Deployment, all []*v1.ReplicaSet, newRS *v1.ReplicaSet) int32 {
	minAvailable := d.GetSpec().GetReplicas() - MaxUnavailable(d)
	newUnavailable := int32(0)
	if newRS != nil {
		newUnavailable = newRS.GetSpec().GetReplicas() - newRS.GetStatus().GetAvailableReplicas()
	}
	return SumReplicas(all) - minAvailable - newUnavailable
}

// ProportionalScale spreads a change of the Deployment's size over its
// active ReplicaSets in proportion to their sizes (Kubernetes' scale(): the
// leftover goes to the largest). It returns the new sizes by index.
func ProportionalScale(sizes []int32, toAdd int32) []int32 {
	out := append([]int32(nil), sizes...)
	var total int32
	for _, s := range sizes {
		total += s
	}
	if total == 0 || toAdd == 0 {
		if total == 0 && toAdd > 0 && len(out) > 0 {
			out[0] += toAdd
		}
		return out
	}
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	// Largest first (ties: earlier index), as Kubernetes sorts by size.
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	var added int32
	for _, i := range order {
		if sizes[i] == 0 {
			continue
		}
		share := int32(math.Round(float64(sizes[i]) * float64(toAdd) / float64(total)))
		if toAdd > 0 {
			share = min(share, toAdd-added)
		} else {
			share = max(share, toAdd-added)
			share = max(share, -out[i])
		}
		out[i] += share
		added += share
	}
	// The leftover goes to the largest.
	if rest := toAdd - added; rest != 0 {
		i := order[0]
		out[i] = max(out[i]+rest, 0)
	}
	return out
}
