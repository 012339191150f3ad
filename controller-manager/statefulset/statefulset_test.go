package statefulset

import "testing"

func TestOrdinalsAndClaims(t *testing.T) {
	for _, tt := range []struct {
		set, pod string
		want     int
	}{{"web", "web-0", 0}, {"web", "web-12", 12}, {"web", "web-x", -1}, {"web", "webby-1", -1}, {"web", "web--1", -1}, {"a-b", "a-b-3", 3}} {
		if got := ordinalOf(tt.set, tt.pod); got != tt.want {
			t.Errorf("ordinalOf(%q, %q) = %d, want %d", tt.set, tt.pod, got, tt.want)
		}
	}
	if got := ClaimName("data", "web", 2); got != "data-web-2" {
		t.Errorf("ClaimName = %q", got)
	}
	if got := PodName("web", 7); got != "web-7" {
		t.Errorf("PodName = %q", got)
	}
}
