package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LogOptions selects what ReadLog returns.
type LogOptions struct {
	Follow     bool
	TailLines  *int64
	Timestamps bool
	// Poll is how often a follower looks for new lines (default 100 ms).
	Poll time.Duration
}

// ErrLogWrite wraps a container's failed log writes (output was dropped).
var ErrLogWrite = errors.New("container output was dropped")

// maxStoredLine bounds what the reader holds of one stored line. The shim
// writes entries of at most 16 KiB of text plus a prefix; a longer stored
// line (a file written by something else) is passed on in pieces.
const maxStoredLine = 64 << 10

// maxChunk is the most text one send carries (many short lines are batched).
const maxChunk = 32 << 10

// ReadLog sends a container's log to send, converted from the CRI format
// ("<time> <stream> <P|F> <text>") to the text the container wrote, with
// the time first if Timestamps. Partial entries (P) are passed on as they
// come, without buffering the rest of their line, so a huge line costs the
// reader no more than one entry. With Follow it keeps reading until the
// container has ended (and everything is read) or ctx ends, and follows
// rotations: when the path names a new file, it reads the rest of the old
// one first (the shim no longer writes to it once the new one exists), then
// the files after it, so every line is sent once, in order.
//
// If the shim failed to write output (a full disk), ReadLog ends, after
// the lines that are there, with an error wrapping ErrLogWrite: at the end,
// or as soon as it happens while following.
func ReadLog(ctx context.Context, c *Container, opt LogOptions, send func([]byte) error) error {
	if opt.Poll <= 0 {
		opt.Poll = 100 * time.Millisecond
	}
	f, err := os.Open(c.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		// Rotated an instant ago, and the shim has not reopened yet: the
		// live file is <log>.1 for that instant.
		f, err = os.Open(c.LogPath + ".1")
	}
	if err != nil {
		return fmt.Errorf("log of container %q: %w", c.Name, err)
	}
	defer func() { f.Close() }()
	if opt.TailLines != nil {
		if err := seekTail(f, *opt.TailLines); err != nil {
			return err
		}
	}
	out := &logFormatter{timestamps: opt.Timestamps}
	flush := func() error {
		if len(out.buf) == 0 {
			return nil
		}
		err := send(out.buf)
		out.buf = nil
		return err
	}
	r := bufio.NewReaderSize(f, maxStoredLine)
	lastPass := false
	var switchTo *os.File // the file after this one, once this one was rotated away
	defer func() {
		if switchTo != nil {
			switchTo.Close()
		}
	}()
	failedBefore := c.LogError() != ""
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case err == nil:
			out.entry(line[:len(line)-1], true)
			if len(out.buf) >= maxChunk {
				if err := flush(); err != nil {
					return err
				}
			}
			continue
		case err == bufio.ErrBufferFull:
			out.entry(line, false)
			if err := flush(); err != nil {
				return err
			}
			continue
		case err != io.EOF:
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		// At the end of this file. A newer file at the path means this one
		// was rotated away and is complete now, but lines may have come
		// since this read: read it to its end once more, then go on.
		if switchTo != nil {
			if len(line) > 0 {
				out.entry(line, true)
			}
			f.Close()
			f, switchTo = switchTo, nil
			r.Reset(f)
			continue
		}
		if next := nextLogFile(c, f); next != nil {
			switchTo = next
			if len(line) > 0 {
				if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
					return err
				}
				r.Reset(f)
			}
			continue
		}
		// The shim writes its last lines before it ends, so one more pass
		// after the exit is seen reads them all.
		if !opt.Follow || lastPass {
			if len(line) > 0 {
				out.entry(line, true)
			}
			if err := flush(); err != nil {
				return err
			}
			return logWriteError(c)
		}
		if !failedBefore && c.LogError() != "" {
			// Failed during this follow: say so now. (A failure from
			// before is said at the end, not to stop every follow.)
			return logWriteError(c)
		}
		if len(line) > 0 { // an entry still being written: read it again later
			if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
				return err
			}
			r.Reset(f)
		}
		if _, exited := c.Exited(); exited {
			lastPass = true
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
		case <-time.After(opt.Poll):
		}
	}
}

func logWriteError(c *Container) error {
	if msg := c.LogError(); msg != "" {
		return fmt.Errorf("%w: %s", ErrLogWrite, msg)
	}
	return nil
}

// nextLogFile opens the file that follows f, once f was rotated away from
// the path (nil while f is still the live file): f was renamed to path.k,
// so path.(k-1) comes next, and the path itself after path.1. It opens it
// at once, before another rotation can rename it.
func nextLogFile(c *Container, f *os.File) *os.File {
	// Not while a rotation renames the files one by one.
	c.rotateMu.RLock()
	defer c.rotateMu.RUnlock()
	name := nextLogName(c, f)
	if name == "" {
		return nil
	}
	nf, err := os.Open(name)
	if err != nil {
		return nil
	}
	return nf
}

// nextLogName is nextLogFile's name; the caller holds c.rotateMu.RLock.
func nextLogName(c *Container, f *os.File) string {
	path := c.LogPath
	cur, err := f.Stat()
	if err != nil {
		return ""
	}
	live, err := os.Stat(path)
	if err != nil || os.SameFile(live, cur) {
		// No file at the path: the shim has not reopened yet (or the
		// container ended in between), so f may still grow.
		return ""
	}
	// The rotated files, newest (.1) first; a gap is possible (a rotation
	// that the ending shim could not complete puts the live file back).
	names, _ := filepath.Glob(path + ".*")
	type rotated struct {
		k    int
		name string
	}
	var files []rotated
	for _, n := range names {
		if k, err := strconv.Atoi(strings.TrimPrefix(n, path+".")); err == nil && k > 0 {
			files = append(files, rotated{k, n})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].k < files[j].k })
	newer := path
	for _, rf := range files {
		st, err := os.Stat(rf.name)
		if err != nil {
			continue
		}
		if os.SameFile(st, cur) {
			return newer
		}
		newer = rf.name
	}
	// f was dropped by rotation (the oldest go first), so every file still
	// there is newer: go on with the oldest of them.
	return newer
}

// logFormatter turns CRI entries into the container's text. It holds no
// text across entries: a partial entry is passed on as it is.
type logFormatter struct {
	timestamps bool
	buf        []byte
	midLine    bool // the last entry was partial: the next one continues its line
	midStored  bool // the last stored line was cut (longer than maxStoredLine)
}

// entry adds one stored line (without its newline); complete is false for
// the first pieces of a stored line longer than maxStoredLine.
func (l *logFormatter) entry(line []byte, complete bool) {
	if l.midStored {
		// The rest of an oversized stored line: raw text.
		l.buf = append(l.buf, line...)
		l.midStored = !complete
		if complete {
			l.buf = append(l.buf, '\n')
			l.midLine = false
		}
		return
	}
	l.midStored = !complete
	f := bytes.SplitN(line, []byte(" "), 4)
	if len(f) < 3 || (string(f[2]) != "P" && string(f[2]) != "F") {
		l.buf = append(l.buf, line...) // not a CRI entry: as it is
		if complete {
			l.buf = append(l.buf, '\n')
		}
		return
	}
	if l.timestamps && !l.midLine {
		l.buf = append(l.buf, f[0]...)
		l.buf = append(l.buf, ' ')
	}
	if len(f) == 4 {
		l.buf = append(l.buf, f[3]...)
	}
	partial := string(f[2]) == "P" || !complete
	l.midLine = partial
	if !partial {
		l.buf = append(l.buf, '\n')
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	if n < 0 {
		return fmt.Errorf("tailLines %d: must not be negative", n)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	var lines int64
	buf := make([]byte, 32<<10)
	pos := size
	for pos > 0 {
		chunk := int64(len(buf))
		if pos < chunk {
			chunk = pos
		}
		pos -= chunk
		if _, err := f.ReadAt(buf[:chunk], pos); err != nil && err != io.EOF {
			return err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	if n == 0 {
		_, err := f.Seek(size, io.SeekStart)
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
