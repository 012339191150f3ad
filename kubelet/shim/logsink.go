package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxLogLine is the longest piece of a line written as one log entry: a
// longer line is split into entries tagged P (partial) and a last one tagged
// F, as Kubernetes' CRI logger does at 16 KiB. Neither the shim nor a log
// reader ever holds more than this of one line.
const maxLogLine = 16 << 10

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// logSink is the container's log file, written only by the shim: the
// workload writes to pipes and never to the file, so the file can be
// renamed (rotation) and reopened without the workload knowing, and a full
// disk drops output instead of blocking or killing the workload.
type logSink struct {
	mu     sync.Mutex // one entry at a time; guards the fields below
	path   string
	w      io.WriteCloser
	open   func(path string) (io.WriteCloser, error)
	marker string           // file that records a failure for a restarted kubelet
	notify func(msg string) // tells the running kubelet, without the disk
	now    func() time.Time // for tests
	buf    []byte           // entries not yet written (at most flushAt and one entry)
	err    string           // the first failed write, "log write failed: ..."
	drop   int64            // bytes lost to failed writes
	marked time.Time        // when the marker was last written
	markOK bool             // the marker holds the latest count
	closed bool             // after close: late output (a writer outside the tree) is dropped
	cut    bool             // the file ends in the middle of an entry (a short write not undone)
}

func newLogSink(path string, f io.WriteCloser, marker string) *logSink {
	return &logSink{path: path, w: f, marker: marker, notify: func(string) {}, now: time.Now,
		open: func(p string) (io.WriteCloser, error) { return openLog(p) }}
}

// flushAt is how much the sink gathers before it writes anyway.
const flushAt = 64 << 10

// writeEntry adds one CRI log entry: "<RFC3339Nano> <stream> <P|F> <text>\n".
// Entries are written in batches, once the copier has drained what the pipe
// held (flush) or flushAt is reached: one write per line would cost a
// system call each. A failed write is counted and reported, and the output
// dropped: the workload's pipe keeps draining, so it never blocks on a full
// disk.
func (s *logSink) writeEntry(stream string, partial bool, text []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	b := s.now().UTC().AppendFormat(s.buf, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	if partial {
		b = append(b, " P "...)
	} else {
		b = append(b, " F "...)
	}
	b = append(b, text...)
	b = append(b, '\n')
	s.buf = b
	if len(s.buf) >= flushAt {
		s.flushLocked()
	}
}

// flush writes the entries gathered so far.
func (s *logSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

func (s *logSink) flushLocked() {
	if len(s.buf) == 0 {
		return
	}
	if s.cut {
		// The file ends in the middle of an entry (a short write that
		// could not be undone): end it, so this batch starts a line.
		s.buf = append(s.buf, 0)
		copy(s.buf[1:], s.buf)
		s.buf[0] = '\n'
	}
	// O_APPEND: whole entries go in one write. A short write is a failure
	// (the disk filled up midway): the rest is dropped.
	n, err := s.w.Write(s.buf)
	if err == nil {
		s.cut = false
	} else {
		if n > 0 {
			n = s.undoPartialEntry(n)
		}
		s.failed(err, int64(len(s.buf)-n))
	}
	s.buf = s.buf[:0]
}

// undoPartialEntry cuts the file back to the end of the last whole entry
// of a write that stopped after n of its bytes (a full disk), so the next
// entry written does not run on from half of one. It returns how many of
// the bytes stay in the file.
func (s *logSink) undoPartialEntry(n int) int {
	keep := bytes.LastIndexByte(s.buf[:n], '\n') + 1
	if keep == n {
		s.cut = false
		return n
	}
	f, ok := s.w.(interface {
		Stat() (fs.FileInfo, error)
		Truncate(size int64) error
	})
	if ok {
		if st, err := f.Stat(); err == nil && f.Truncate(st.Size()-int64(n-keep)) == nil {
			// Writing whole entries again lifts any earlier cut.
			s.cut = s.cut && keep == 0
			return keep
		}
	}
	s.cut = true
	return n
}

// failed records a failed write; the caller holds mu.
func (s *logSink) failed(err error, lost int64) {
	s.drop += lost
	s.markOK = false
	if s.err == "" {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		s.err = "log write failed: " + err.Error()
		s.notify("logerr " + s.err)
	}
	// The marker is rewritten at most once a second while writes fail (the
	// disk may be full for it too: it is retried then).
	if now := s.now(); now.Sub(s.marked) >= time.Second {
		s.marked = now
		s.markOK = s.writeMarker() == nil
	}
}

func (s *logSink) writeMarker() error {
	if s.marker == "" {
		return nil
	}
	return writeJSON(s.marker, map[string]any{"error": s.err, "droppedBytes": s.drop})
}

// reopen starts a fresh file at the path, after the kubelet renamed the
// current one away. Entries are written under mu, so every entry is in
// exactly one of the two files and the old one is complete once the new
// one exists.
func (s *logSink) reopen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	// Entries gathered before the rename belong to the old file.
	s.flushLocked()
	f, err := s.open(s.path)
	if err != nil {
		// Keep writing to the renamed file: nothing is lost, and the
		// kubelet sees no new file and keeps the old one live.
		s.notify("warn cannot reopen the log after a rotation, still writing to the renamed file: " + err.Error())
		return
	}
	_ = s.w.Close()
	s.w = f
	s.cut = false // a fresh file
}

// failure returns the first failed write and the bytes lost, and rewrites
// the marker if it lags.
func (s *logSink) failure() (string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	if s.err != "" && !s.markOK {
		s.markOK = s.writeMarker() == nil
	}
	return s.err, s.drop
}

func (s *logSink) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	s.closed = true
	_ = s.w.Close()
}

// copyLog copies r into the sink, one entry per line; a line longer than
// maxLogLine becomes several entries (P ... P F).
func copyLog(s *logSink, r io.ReadCloser, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			partial := err == bufio.ErrBufferFull
			if !partial && line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			s.writeEntry(stream, partial, line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			s.flush()
			return
		}
		if !completeLineBuffered(br) {
			// The next ReadSlice reads the pipe, and may wait there (for
			// the rest of a prompt or of progress dots): what was read is
			// written first.
			s.flush()
		}
	}
}

// completeLineBuffered reports whether br holds a whole line, which the
// next ReadSlice returns without reading the pipe.
func completeLineBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// startNotifier returns a function that sends one line to the kubelet over
// the start pipe without ever blocking the caller (a message is dropped if
// the kubelet does not read; the marker file still has it).
func startNotifier(ready *os.File) func(string) {
	if ready == nil {
		return func(string) {}
	}
	ch := make(chan string, 4)
	go func() {
		for m := range ch {
			// EPIPE once the kubelet is gone: ignored (never SIGPIPE on fd 3).
			_, _ = ready.Write([]byte(strings.ReplaceAll(m, "\n", " ") + "\n"))
		}
	}()
	return func(m string) {
		select {
		case ch <- m:
		default:
		}
	}
}

// killDescendants kills and reaps every remaining descendant of the shim
// once the main process has ended, the way the kernel kills a PID
// namespace when its init ends: SIGKILL, no grace. It finds them through
// /proc/<pid>/task/<tid>/children, which also finds processes that left
// the process group (setsid) when no cgroup tracks the container; as the
// subreaper, the shim becomes the parent of each orphan, so it loops until
// it has no child left (wait4: ECHILD) or max has passed. It returns how
// many descendants were still there when max passed (0 when all are gone).
func killDescendants(max time.Duration) int {
	deadline := time.Now().Add(max)
	self := os.Getpid()
	for {
		killListed(descendants(self), self)
		for {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.ECHILD {
				return 0
			}
			if err == syscall.EINTR {
				continue
			}
			if err != nil || got <= 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			return len(descendants(self))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// proc is a descendant and the parent it was found under.
type proc struct{ pid, parent int }

// killListed kills the listed processes, parents first (a killed parent
// can no longer reap, and so free the pid of, a child read from its
// children file).
func killListed(list []proc, self int) {
	for _, p := range list {
		sendKill(p, self)
	}
}

// sendKill is killVerified; tests replace it.
var sendKill = killVerified

// killVerified sends SIGKILL to p.pid only if it is still the process
// found in the walk. Between the walk and the kill the process may have
// died, been reaped by its parent, and its pid been taken by a stranger:
// the kill goes through a pidfd (which names one process, never a later
// one with the same pid), opened first and then checked, so the pidfd is
// known to hold the descendant: its parent is still the one it was found
// under, or the shim (it was orphaned to the subreaper since). It reports
// whether the signal was sent.
func killVerified(p proc, self int) bool {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err == unix.ENOSYS {
		// Kernels before 5.3: check, then kill by pid (a narrow race).
		if pp := procPpid(p.pid); pp != p.parent && pp != self {
			return false
		}
		return syscall.Kill(p.pid, syscall.SIGKILL) == nil
	}
	if err != nil {
		return false // gone
	}
	defer unix.Close(fd)
	if pp := procPpid(p.pid); pp != p.parent && pp != self {
		return false // not our descendant any more: the pid was reused
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

// procPpid reads the parent pid (field 4) of /proc/<pid>/stat; -1 if the
// process is gone.
func procPpid(pid int) int {
	f := procStatFields(pid)
	if len(f) < 2 {
		return -1
	}
	v, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return v
}

// descendants lists the descendants of pid, parents before their children.
func descendants(pid int) []proc {
	var out []proc
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children(p) {
			if !seen[c] {
				seen[c] = true
				out = append(out, proc{pid: c, parent: p})
				queue = append(queue, c)
			}
		}
	}
	return out
}

// children reads the children of every thread of pid.
func children(pid int) []int {
	files, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
