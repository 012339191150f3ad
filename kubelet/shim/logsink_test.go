package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// fullDisk fails every write as a full disk does.
type fullDisk struct{ calls int }

func (d *fullDisk) Write(b []byte) (int, error) {
	d.calls++
	return 0, &fs.PathError{Op: "write", Path: "/x.log", Err: syscall.ENOSPC}
}
func (d *fullDisk) Close() error { return nil }

func entries(t *testing.T, b []byte) [][]string {
	t.Helper()
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("not a CRI entry: %.60q", l)
		}
		out = append(out, f[1:])
	}
	return out
}

// A line longer than 16 KiB becomes P entries and a last F, as
// Kubernetes' CRI logger writes it.
func TestLongLinesAreSplitAt16KiB(t *testing.T) {
	var buf bytes.Buffer
	s := newLogSink("", nopCloser{&buf}, "")
	long := strings.Repeat("a", 40000)
	copyLog(s, io.NopCloser(strings.NewReader(long+"\nshort\nno newline at the end")), "stdout")
	got := entries(t, buf.Bytes())
	want := [][]string{{"stdout", "P", long[:16384]}, {"stdout", "P", long[:16384]}, {"stdout", "F", long[:40000-2*16384]},
		{"stdout", "F", "short"}, {"stdout", "F", "no newline at the end"}}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i][0] != want[i][0] || got[i][1] != want[i][1] || got[i][2] != want[i][2] {
			t.Errorf("entry %d = %s %s (%d bytes), want %s %s (%d bytes)", i, got[i][0], got[i][1], len(got[i][2]), want[i][0], want[i][1], len(want[i][2]))
		}
	}
}

// A full disk: output is dropped and counted, the kubelet is told once over
// the pipe, the marker file says it, and copying goes on (the writer's pipe
// never fills up).
func TestFailedLogWritesAreReported(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "c.logerr.json")
	disk := &fullDisk{}
	s := newLogSink("", disk, marker)
	var told []string
	s.notify = func(m string) { told = append(told, m) }
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	input := strings.Repeat("some output\n", 100)
	copyLog(s, io.NopCloser(strings.NewReader(input)), "stdout")
	msg, dropped := s.failure()
	if msg != "log write failed: no space left on device" {
		t.Errorf("failure = %q", msg)
	}
	if disk.calls == 0 || dropped < int64(len(input)) {
		t.Errorf("%d writes, %d bytes dropped; want at least %d bytes (every entry)", disk.calls, dropped, len(input))
	}
	if len(told) != 1 || told[0] != "logerr log write failed: no space left on device" {
		t.Errorf("the kubelet was told %q, want one logerr line", told)
	}
	var m struct {
		Error        string `json:"error"`
		DroppedBytes int64  `json:"droppedBytes"`
	}
	b, err := os.ReadFile(marker)
	if err != nil || json.Unmarshal(b, &m) != nil || m.Error != msg || m.DroppedBytes != dropped {
		t.Errorf("marker = %s (%v), want the error and %d bytes", b, err, dropped)
	}
}

// After a rename of the file, a reopen sends the next entries to a fresh
// file at the path; every entry is in exactly one of the two.
func TestReopenAfterRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newLogSink(path, f, "")
	s.writeEntry("stdout", false, []byte("one"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	s.writeEntry("stdout", false, []byte("two"))
	s.reopen()
	s.writeEntry("stdout", false, []byte("three"))
	s.close()
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), " F one\n") || !strings.Contains(string(old), " F two\n") || strings.Contains(string(old), "three") {
		t.Errorf("the renamed file has %q, want one and two", old)
	}
	if !strings.Contains(string(cur), " F three\n") || strings.Contains(string(cur), "two") {
		t.Errorf("the new file has %q, want three only", cur)
	}
}

// syncBuffer is a writer the test reads while the copier writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) Close() error { return nil }
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A complete line followed by the start of the next one (a prompt,
// progress dots) is written at once: the unfinished rest must not hold
// it back until the next newline comes.
func TestCompleteLinesAreNotHeldBackByAPartialOne(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	out := &syncBuffer{}
	s := newLogSink("", out, "")
	done := make(chan struct{})
	go func() { defer close(done); copyLog(s, r, "stdout") }()
	if _, err := w.Write([]byte("hello\nwor")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), " F hello\n") {
		if time.Now().After(deadline) {
			t.Fatalf("\"hello\" is not in the log while \"wor\" waits for its newline; the log has %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(out.String(), "wor") {
		t.Errorf("the unfinished line was written as an entry: %q", out.String())
	}
	w.Write([]byte("ld\n"))
	w.Close()
	<-done
	if !strings.Contains(out.String(), " F world\n") {
		t.Errorf("the log has %q, want the line world once finished", out.String())
	}
}

// smallDisk is a real file on a disk with room for only limit bytes: a
// write that does not fit is short, then ENOSPC, as write(2) does.
type smallDisk struct {
	*os.File
	limit int64
}

func (d *smallDisk) Write(b []byte) (int, error) {
	st, err := d.File.Stat()
	if err != nil {
		return 0, err
	}
	room := d.limit - st.Size()
	if room >= int64(len(b)) {
		return d.File.Write(b)
	}
	n := 0
	if room > 0 {
		n, _ = d.File.Write(b[:room])
	}
	return n, &fs.PathError{Op: "write", Path: d.Name(), Err: syscall.ENOSPC}
}

// A write cut short by a full disk must not leave half an entry in the
// file, with the next entry glued onto it once there is room again.
func TestShortWriteLeavesNoHalfEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	disk := &smallDisk{File: f, limit: 100}
	s := newLogSink(path, disk, "")
	s.writeEntry("stdout", false, []byte("first"))
	s.flush()
	s.writeEntry("stdout", false, []byte(strings.Repeat("x", 200))) // does not fit: cut short
	s.flush()
	disk.limit = 1 << 20 // room again
	s.writeEntry("stdout", false, []byte("after"))
	s.close()
	b, _ := os.ReadFile(path)
	got := entries(t, b)
	if len(got) != 2 || got[0][2] != "first" || got[1][2] != "after" {
		t.Errorf("the log has %q, want the entries first and after, whole, and nothing of the one cut short", b)
	}
	if msg, dropped := s.failure(); msg == "" || dropped == 0 {
		t.Errorf("failure = %q, %d bytes: the cut entry is not reported as dropped", msg, dropped)
	}
}

// A writer that cannot be cut back (no Truncate): the next batch starts
// with a newline, so its entries are not glued onto the half one.
func TestShortWriteWithoutTruncateStartsANewLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	disk := &smallDisk{File: f, limit: 100}
	s := newLogSink(path, struct{ io.WriteCloser }{disk}, "")
	s.writeEntry("stdout", false, []byte("first"))
	s.flush()
	s.writeEntry("stdout", false, []byte(strings.Repeat("x", 200)))
	s.flush()
	disk.limit = 1 << 20
	s.writeEntry("stdout", false, []byte("after"))
	s.close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[2], " stdout F after") {
		t.Errorf("the log has %q, want the entry after on a line of its own", b)
	}
}
