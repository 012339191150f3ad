package registry

import (
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// QOSClass is Kubernetes' pod QoS class: Guaranteed when every container
// has cpu and memory limits equal to its requests, BestEffort when none has
// any, Burstable otherwise.
func QOSClass(s *v1.PodSpec) string {
	any, guaranteed := false, true
	for _, c := range s.GetContainers() {
		req, lim := c.GetResources().GetRequests(), c.GetResources().GetLimits()
		if len(req) > 0 || len(lim) > 0 {
			any = true
		}
		for _, r := range []string{"cpu", "memory"} {
			l, ok := lim[r]
			if !ok {
				guaranteed = false
				continue
			}
			if q, ok := req[r]; ok && q != l {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return "BestEffort"
	case guaranteed:
		return "Guaranteed"
	}
	return "Burstable"
}
