package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogFormatter(t *testing.T) {
	long := strings.Repeat("x", 10)
	for _, tc := range []struct {
		name       string
		timestamps bool
		lines      []string // stored lines; a trailing "+" marks a piece cut at maxStoredLine
		want       string
	}{
		{"full lines", false, []string{"T1 stdout F a", "T2 stderr F b"}, "a\nb\n"},
		{"partials are passed on, joined by position", false, []string{"T1 stdout P ab", "T2 stdout P cd", "T3 stdout F e"}, "abcde\n"},
		{"one timestamp per line", true, []string{"T1 stdout P ab", "T2 stdout F cd", "T3 stdout F e"}, "T1 abcd\nT3 e\n"},
		{"an empty line", false, []string{"T1 stdout F "}, "\n"},
		{"not CRI", false, []string{"plain text"}, "plain text\n"},
		{"an oversized stored line", true, []string{"T1 stdout F " + long + "+", long + "+", long}, "T1 " + long + long + long + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &logFormatter{timestamps: tc.timestamps}
			for _, l := range tc.lines {
				cut := strings.HasSuffix(l, "+")
				f.entry([]byte(strings.TrimSuffix(l, "+")), !cut)
			}
			if string(f.buf) != tc.want {
				t.Errorf("got %q, want %q", f.buf, tc.want)
			}
		})
	}
}

// The file after a rotated one: the next newer rotated file, the live one
// after .1, and the oldest left when this one was dropped.
func TestNextLogName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	for _, n := range []string{"", ".1", ".2", ".4", ".old"} { // .3 missing: a gap
		if err := os.WriteFile(path+n, []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Container{LogPath: path}
	open := func(name string) *os.File {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	dropped := filepath.Join(dir, "dropped")
	if err := os.WriteFile(dropped, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for cur, want := range map[string]string{
		path:        "",
		path + ".1": path,
		path + ".2": path + ".1",
		path + ".4": path + ".2",
		dropped:     path + ".4",
	} {
		if got := nextLogName(c, open(cur)); got != want {
			t.Errorf("after %s: %q, want %q", filepath.Base(cur), got, want)
		}
	}
}
