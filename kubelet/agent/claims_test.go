package agent

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestClaimDirStaysInsideTheVolumeDir(t *testing.T) {
	long := strings.Repeat("a", 253)
	cases := []struct {
		ns, claim string
		ok        bool
	}{
		{"default", "data-web-0", true},
		{"default", long, true},
		{"default", long + "a", false},
		{"default", "../x", false},
		{"default", "a/b", false},
		{"default", "..", false},
		{"default", "", false},
		{"..", "x", false},
		{"a/b", "x", false},
	}
	for _, c := range cases {
		dir, err := ClaimDir("/vol", c.ns, c.claim)
		if (err == nil) != c.ok {
			t.Errorf("ClaimDir(%q, %q) = %q, %v; want ok=%v", c.ns, shortName(c.claim), dir, err, c.ok)
			continue
		}
		if err != nil {
			continue
		}
		if filepath.Dir(filepath.Dir(dir)) != "/vol" {
			t.Errorf("ClaimDir(%q, %q) = %q: not two levels under /vol", c.ns, shortName(c.claim), dir)
		}
		for _, part := range strings.Split(dir, "/") {
			if len(part) > 255 {
				t.Errorf("ClaimDir: element of %d bytes", len(part))
			}
		}
	}
}

func shortName(s string) string {
	if len(s) > 20 {
		return s[:10] + "..."
	}
	return s
}
