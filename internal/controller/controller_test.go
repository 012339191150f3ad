package controller

import (
	"strings"
	"testing"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// A ReplicaSet of any valid name (up to 253 characters) names its pods with
// a generateName the apiserver accepts, as Kubernetes' getPodsPrefix does.
func TestPodsPrefix(t *testing.T) {
	long := strings.Repeat("r", 253)
	for _, tc := range []struct{ name, want string }{
		{"web", "web-"},
		// Kubernetes' prefix check masks the trailing '-' as one
		// character less, so even a 253-character name keeps its '-'.
		{long, long + "-"},
		// A name no valid object has, but the fallback is the bare name.
		{long + "r", long + "r"},
	} {
		got := PodsPrefix(tc.name)
		if got != tc.want {
			t.Errorf("PodsPrefix(%d characters) = %d characters, want %d", len(tc.name), len(got), len(tc.want))
		}
		if len(tc.name) > 253 {
			continue
		}
		p := &v1.Pod{Metadata: &v1.ObjectMeta{Namespace: "default", GenerateName: got},
			Spec: &v1.PodSpec{Containers: []*v1.Container{{Name: "c", Command: []string{"x"}}}}}
		api.Default(p)
		if errs := api.Validate(p); len(errs) > 0 {
			t.Errorf("generateName from a %d-character name refused: %v", len(tc.name), errs.ToAggregate())
		}
		if n := api.GenerateName(got, "abcde"); len(n) > 63 {
			t.Errorf("generated name %q is %d characters", n, len(n))
		}
	}
}
