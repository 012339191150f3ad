package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func servingStatus(t *testing.T, hs *health.Server) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

// TestHealthNeedsFailuresInARowAndIgnoresOwnDefrag: one slow probe is no
// outage, three in a row are; a probe that fails while this apiserver
// defragments its own member does not count; an alarm counts at once.
func TestHealthNeedsFailuresInARowAndIgnoresOwnDefrag(t *testing.T) {
	hs := health.NewServer()
	answer, defrag := "ok", false
	h := &etcdHealth{hs: hs, timeout: time.Second,
		defragmenting: func() bool { return defrag },
		probe: func(context.Context) (string, bool, bool) {
			switch answer {
			case "slow":
				return "etcd does not answer: context deadline exceeded", false, true
			case "corrupt":
				return "etcd member 1 raised the CORRUPT alarm", false, false
			}
			return "", false, false
		}}
	ctx := context.Background()
	steps := []struct {
		answer string
		defrag bool
		want   healthpb.HealthCheckResponse_ServingStatus
	}{
		{"ok", false, healthpb.HealthCheckResponse_SERVING},
		{"slow", false, healthpb.HealthCheckResponse_SERVING},
		{"slow", false, healthpb.HealthCheckResponse_SERVING},
		{"ok", false, healthpb.HealthCheckResponse_SERVING}, // resets the count
		{"slow", false, healthpb.HealthCheckResponse_SERVING},
		{"slow", true, healthpb.HealthCheckResponse_SERVING}, // our own defrag: not counted
		{"slow", true, healthpb.HealthCheckResponse_SERVING},
		{"slow", false, healthpb.HealthCheckResponse_SERVING},
		{"slow", false, healthpb.HealthCheckResponse_NOT_SERVING}, // third in a row
		{"ok", false, healthpb.HealthCheckResponse_SERVING},
		{"corrupt", false, healthpb.HealthCheckResponse_NOT_SERVING}, // an alarm: at once
	}
	for i, st := range steps {
		answer, defrag = st.answer, st.defrag
		h.check(ctx)
		if got := servingStatus(t, hs); got != st.want {
			t.Fatalf("step %d (%s, defrag %v): %v, want %v", i+1, st.answer, st.defrag, got, st.want)
		}
	}
}
