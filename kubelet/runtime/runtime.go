// Package runtime runs containers as OS processes, each under a
// kubelet-shim: start, signal, kill, logs on disk, and recovery of running
// containers after a kubelet restart. Everything it knows is on disk under
// Root, so a restarted kubelet rebuilds it:
//
//	<root>/state/<pod uid>_<container>_<attempt>.{state,status,logerr}.json
//	<root>/logs/<pod uid>_<container>_<attempt>.log     the live log, written by the shim only
//	<root>/logs/<pod uid>_<container>_<attempt>.log.N   rotated away (1 = newest)
//	<root>/pods/<pod uid>/          the pod's folder (default working directory)
//
// The state and log folders are flat on purpose: a mkdir costs about 0.5 ms
// on this workplace's disks, which would be most of a container's start.
package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ShimSpec is spec.json, read by kubelet-shim (kubelet/shim.Spec).
type ShimSpec struct {
	Command      []string `json:"command"`
	Env          []string `json:"env"`
	WorkingDir   string   `json:"workingDir"`
	LogPath      string   `json:"logPath"`
	TrackCgroup  string   `json:"trackCgroup,omitempty"`
	LimitCgroups []string `json:"limitCgroups,omitempty"`
	MemoryCgroup string   `json:"memoryCgroup,omitempty"`
}

type shimState struct {
	Pid       int    `json:"pid"`
	Pgid      int    `json:"pgid"`
	StartTime uint64 `json:"startTime"`
	StartedAt string `json:"startedAt"`
	ShimPid   int    `json:"shimPid"`
	// ShimStartTime tells the shim from a process that reused its pid.
	ShimStartTime uint64 `json:"shimStartTime"`
}

type shimStatus struct {
	StartError string `json:"startError,omitempty"`
	ExitCode   int    `json:"exitCode"`
	Signal     int    `json:"signal,omitempty"`
	OOMKilled  bool   `json:"oomKilled,omitempty"`
	FinishedAt string `json:"finishedAt"`
	// LogError is the shim's first failed log write (a full disk) and
	// LogDroppedBytes the output it lost.
	LogError        string `json:"logError,omitempty"`
	LogDroppedBytes int64  `json:"logDroppedBytes,omitempty"`
	// Survivors counts the container's processes the shim could not kill
	// (they outlive the container).
	Survivors int `json:"survivors,omitempty"`
}

// logFailure is <prefix>.logerr.json, written by the shim while log
// writes fail, so a restarted kubelet learns of it too.
type logFailure struct {
	Error        string `json:"error"`
	DroppedBytes int64  `json:"droppedBytes"`
}

// ContainerSpec is one container start.
type ContainerSpec struct {
	PodUID     string
	Name       string
	Command    []string // command followed by args
	Env        []string
	WorkingDir string
	// MemoryLimit in bytes and CPULimit in millicores; 0 means none.
	MemoryLimit int64
	CPULimit    int64
}

// Container is one attempt (start) of a container. Exited and the fields
// after it are set once, when the process has ended.
type Container struct {
	PodUID    string
	Name      string
	Attempt   int
	Pid       int
	StartedAt time.Time
	LogPath   string

	mu         sync.Mutex // guards the fields below
	exited     bool
	exitCode   int
	signal     int
	oomKilled  bool
	finishedAt time.Time
	done       chan struct{}
	dir        string // the state files' path prefix
	pgid       int
	startTime  uint64
	shimPid    int
	shimStart  uint64
	rotateMu   sync.RWMutex // held by a rotation; log readers look for the next file under RLock
	logErr     string       // the first failed log write, "log write failed: ..."
	logDropped int64
}

// LogError reports a failed write to the container's log file (output was
// dropped): "" when every line was written.
func (c *Container) LogError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logErr == "" {
		return ""
	}
	if c.logDropped > 0 {
		return fmt.Sprintf("%s (%d bytes of output dropped)", c.logErr, c.logDropped)
	}
	return c.logErr
}

// setLogError records a log write failure; it reports whether it is new.
func (c *Container) setLogError(msg string, dropped int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	isNew := c.logErr == "" && msg != ""
	if c.logErr == "" {
		c.logErr = msg
	}
	if dropped > c.logDropped {
		c.logDropped = dropped
	}
	return isNew
}

// Exit is how a container ended.
type Exit struct {
	Code       int
	Signal     int
	OOMKilled  bool
	FinishedAt time.Time
}

// Exited returns the exit, if the process has ended.
func (c *Container) Exited() (Exit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Exit{Code: c.exitCode, Signal: c.signal, OOMKilled: c.oomKilled, FinishedAt: c.finishedAt}, c.exited
}

// Done is closed when the process has ended.
func (c *Container) Done() <-chan struct{} { return c.done }

func (c *Container) setExit(s shimStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exited {
		return
	}
	c.exited = true
	c.exitCode, c.signal, c.oomKilled = s.ExitCode, s.Signal, s.OOMKilled
	if s.LogError != "" {
		if c.logErr == "" {
			c.logErr = s.LogError
		}
		c.logDropped = max(c.logDropped, s.LogDroppedBytes)
	}
	c.finishedAt, _ = time.Parse(time.RFC3339Nano, s.FinishedAt)
	if c.finishedAt.IsZero() {
		c.finishedAt = time.Now()
	}
	close(c.done)
}

// Config configures a Runtime.
type Config struct {
	Root     string // the kubelet's state folder
	ShimPath string // the kubelet-shim binary
	Cgroups  *Cgroups
	// OnExit is called (from any goroutine) when a container exits.
	OnExit func(podUID string)
}

// Runtime starts and tracks containers.
type Runtime struct {
	cfg     Config
	devNull *os.File // the shims' stdout and stderr

	mu         sync.Mutex              // guards containers
	containers map[string][]*Container // pod uid/name -> attempts, oldest first
}

// New returns a runtime; call Recover before starting anything.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" || cfg.ShimPath == "" {
		return nil, errors.New("runtime: Root and ShimPath are required")
	}
	if _, err := os.Stat(cfg.ShimPath); err != nil {
		return nil, fmt.Errorf("--shim %s: %w (build it with scripts/build.sh)", cfg.ShimPath, err)
	}
	for _, d := range []string{"state", "logs", "pods"} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o755); err != nil {
			return nil, err
		}
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &Runtime{cfg: cfg, devNull: devNull, containers: map[string][]*Container{}}, nil
}

func key(uid, name string) string { return uid + "/" + name }

// PodDir is the pod's own folder (the default working directory).
func (r *Runtime) PodDir(uid string) string { return filepath.Join(r.cfg.Root, "pods", uid) }

func attemptName(uid, name string, attempt int) string {
	return uid + "_" + name + "_" + strconv.Itoa(attempt)
}

// statePrefix is the path prefix of an attempt's state files.
func (r *Runtime) statePrefix(uid, name string, attempt int) string {
	return filepath.Join(r.cfg.Root, "state", attemptName(uid, name, attempt))
}

// LogPath is the log file of one attempt.
func (r *Runtime) LogPath(uid, name string, attempt int) string {
	return filepath.Join(r.cfg.Root, "logs", attemptName(uid, name, attempt)+".log")
}

func removeAttempt(prefix string) {
	os.Remove(prefix + ".state.json")
	os.Remove(prefix + ".status.json")
	os.Remove(prefix + ".logerr.json")
}

// StartError is a container that could not be started (RunContainerError).
type StartError struct{ Msg string }

func (e *StartError) Error() string { return e.Msg }

// Start starts the next attempt of a container and returns once the process
// runs (or could not start: *StartError).
func (r *Runtime) Start(ctx context.Context, spec ContainerSpec) (*Container, error) {
	r.mu.Lock()
	attempt := len(r.containers[key(spec.PodUID, spec.Name)])
	r.mu.Unlock()
	dir := r.statePrefix(spec.PodUID, spec.Name, attempt)
	logPath := r.LogPath(spec.PodUID, spec.Name, attempt)
	removeAttempt(dir) // leftovers of a start that failed before
	cg, err := r.cfg.Cgroups.prepare(spec.PodUID, spec.Name, attempt, spec.MemoryLimit, spec.CPULimit)
	if err != nil {
		return nil, fmt.Errorf("cgroups for container %s: %w", spec.Name, err)
	}
	s := ShimSpec{Command: spec.Command, Env: spec.Env, WorkingDir: spec.WorkingDir, LogPath: logPath,
		TrackCgroup: cg.track, LimitCgroups: cg.limits, MemoryCgroup: cg.memory}
	specJSON, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	// fd 3: the shim says "started" (or "error"); fd 4: the spec, as JSON.
	readR, readW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		readR.Close()
		readW.Close()
		return nil, err
	}
	cmd := exec.Command(r.cfg.ShimPath, dir)
	cmd.Env = []string{"GOMAXPROCS=1", "GOGC=20"}
	// The shim reports through its files, never stdout/stderr: a pipe to a
	// dead kubelet would kill it with SIGPIPE.
	cmd.Stdout, cmd.Stderr = r.devNull, r.devNull
	cmd.ExtraFiles = []*os.File{readW, specR}
	// Its own session: the shim and its workload outlive the kubelet and
	// never get the kubelet's terminal signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readW.Close()
	specR.Close()
	if err != nil {
		readR.Close()
		specW.Close()
		return nil, fmt.Errorf("start kubelet-shim: %w", err)
	}
	_, _ = specW.Write(specJSON) // well under the pipe buffer
	specW.Close()
	fromShim := bufio.NewReader(readR)
	line, _ := fromShim.ReadString('\n')
	if strings.TrimSpace(line) != "started" {
		readR.Close()
		_ = cmd.Wait()
		st, err := readStatus(dir)
		msg := st.StartError
		if err != nil || msg == "" {
			msg = fmt.Sprintf("kubelet-shim (%s) ended before starting the process", r.cfg.ShimPath)
		}
		removeAttempt(dir)
		os.Remove(logPath)
		return nil, &StartError{Msg: msg}
	}
	c, err := r.load(spec.PodUID, spec.Name, attempt)
	if err != nil {
		readR.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	r.mu.Lock()
	r.containers[key(spec.PodUID, spec.Name)] = append(r.containers[key(spec.PodUID, spec.Name)], c)
	r.mu.Unlock()
	go func() {
		// The shim reports log write failures on the start pipe while it
		// runs (a full disk may hold no marker file); EOF when it ends.
		for {
			line, err := fromShim.ReadString('\n')
			line = strings.TrimSpace(line)
			if msg, ok := strings.CutPrefix(line, "logerr "); ok {
				r.logFailed(c, msg, 0)
			} else if msg, ok := strings.CutPrefix(line, "warn "); ok {
				slog.Warn("container shim: "+msg, "pod_uid", c.PodUID, "container", c.Name, "attempt", c.Attempt)
			}
			if err != nil {
				break
			}
		}
		readR.Close()
		_ = cmd.Wait() // the shim is our child: reap it
		r.collect(c)
	}()
	return c, nil
}

// collect reads the exit of a container whose shim has ended.
func (r *Runtime) collect(c *Container) {
	st, err := readStatus(c.dir)
	if err != nil {
		// The shim died without a status (killed): the exit is unknown.
		st = shimStatus{ExitCode: 137, Signal: int(syscall.SIGKILL), FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}
		_ = writeJSON(c.dir+".status.json", st)
		slog.Warn("container shim ended without a status; reporting exit 137", "pod_uid", c.PodUID, "container", c.Name)
	}
	if st.LogError != "" {
		r.logFailed(c, st.LogError, st.LogDroppedBytes)
	}
	if st.Survivors > 0 {
		slog.Warn("processes of an ended container survived the shim's SIGKILL and outlive it", "pod_uid", c.PodUID,
			"container", c.Name, "attempt", c.Attempt, "survivors", st.Survivors)
	}
	c.setExit(st)
	// Only now, with the status written (the shim has killed and reaped
	// everything) or the shim gone, is the tracking cgroup empty.
	r.cfg.Cgroups.removeTrack(c.PodUID, c.Name, c.Attempt)
	if r.cfg.OnExit != nil {
		r.cfg.OnExit(c.PodUID)
	}
}

// logFailed records and logs (once) a container's failed log writes.
func (r *Runtime) logFailed(c *Container, msg string, dropped int64) {
	if c.setLogError(msg, dropped) {
		slog.Warn("container log output is being dropped", "pod_uid", c.PodUID, "container", c.Name,
			"attempt", c.Attempt, "log", c.LogPath, "err", msg)
	}
}

// load reads one attempt from disk.
func (r *Runtime) load(uid, name string, attempt int) (*Container, error) {
	dir := r.statePrefix(uid, name, attempt)
	var st shimState
	if err := readJSON(dir+".state.json", &st); err != nil {
		return nil, err
	}
	c := &Container{PodUID: uid, Name: name, Attempt: attempt, Pid: st.Pid, LogPath: r.LogPath(uid, name, attempt),
		done: make(chan struct{}), dir: dir, pgid: st.Pgid, startTime: st.StartTime,
		shimPid: st.ShimPid, shimStart: st.ShimStartTime}
	c.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
	return c, nil
}

// Recover rebuilds the runtime's view from disk after a (re)start: exited
// attempts keep their exit codes, running ones are adopted (matched by pid
// and process start time, never restarted). It returns the pod uids found.
func (r *Runtime) Recover() ([]string, error) {
	uidSet := map[string]bool{}
	pods, err := os.ReadDir(filepath.Join(r.cfg.Root, "pods"))
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		uidSet[p.Name()] = true
	}
	states, err := filepath.Glob(filepath.Join(r.cfg.Root, "state", "*.state.json"))
	if err != nil {
		return nil, err
	}
	type attemptKey struct{ uid, name string }
	found := map[attemptKey][]int{}
	for _, st := range states {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(st), ".state.json"), "_")
		if len(parts) != 3 {
			continue
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			continue
		}
		k := attemptKey{parts[0], parts[1]}
		found[k] = append(found[k], n)
		uidSet[parts[0]] = true
	}
	var adopted []*Container
	for k, nums := range found {
		sort.Ints(nums)
		var list []*Container
		for i, n := range nums {
			if i != n {
				break // attempts are numbered without gaps
			}
			c, err := r.load(k.uid, k.name, n)
			if err != nil {
				continue
			}
			// A log failure the shim reported while no kubelet listened
			// (a fresh attempt from Start has none yet).
			var lf logFailure
			if readJSON(c.dir+".logerr.json", &lf) == nil && lf.Error != "" {
				r.logFailed(c, lf.Error, lf.DroppedBytes)
			}
			if st, err := readStatus(c.dir); err == nil {
				c.setExit(st)
			} else if (procStartTime(c.Pid) == c.startTime && c.startTime != 0) || r.shimAlive(c) {
				// The workload runs, or its shim is still winding it down
				// (killing descendants, draining logs): the status will come.
				adopted = append(adopted, c)
			} else {
				// Neither running nor a recorded exit: the shim was killed.
				st := shimStatus{ExitCode: 137, Signal: int(syscall.SIGKILL), FinishedAt: time.Now().UTC().Format(time.RFC3339Nano)}
				_ = writeJSON(c.dir+".status.json", st)
				c.setExit(st)
			}
			list = append(list, c)
		}
		if len(list) > 0 {
			r.mu.Lock()
			r.containers[key(k.uid, k.name)] = list
			r.mu.Unlock()
		}
	}
	if len(adopted) > 0 {
		slog.Info("adopted running containers", "count", len(adopted))
		go r.watchAdopted(adopted)
	}
	uids := make([]string, 0, len(uidSet))
	for uid := range uidSet {
		uids = append(uids, uid)
	}
	return uids, nil
}

// legacyShimGrace is how long a restarted kubelet waits for the status of
// a container whose state file does not identify its shim (written by an
// older shim) once the main process is gone.
const legacyShimGrace = 30 * time.Second

// watchAdopted waits for adopted containers (whose shims are not our
// children) to write their status. After the main process ends the shim
// may take a while (it kills and reaps every descendant, up to 10 s, and
// drains the log pipes, up to 2 s) before it writes the status, so the
// exit is read from the status file; it falls back to 137 only once the
// shim itself is gone (its start time changed, or it is a zombie or
// absent) and left no status.
func (r *Runtime) watchAdopted(cs []*Container) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	mainGone := map[*Container]time.Time{}
	for len(cs) > 0 {
		<-t.C
		rest := cs[:0]
		for _, c := range cs {
			if _, err := os.Stat(c.dir + ".status.json"); err == nil {
				r.collect(c)
				continue
			}
			if c.LogError() == "" {
				var lf logFailure
				if readJSON(c.dir+".logerr.json", &lf) == nil && lf.Error != "" {
					r.logFailed(c, lf.Error, lf.DroppedBytes)
				}
			}
			if r.shimGone(c, mainGone) {
				// collect reads the status once more: the shim may have
				// written it just before it ended.
				r.collect(c)
				continue
			}
			rest = append(rest, c)
		}
		cs = rest
	}
}

// shimGone reports whether an adopted container's shim has ended, so no
// status will come any more.
func (r *Runtime) shimGone(c *Container, mainGone map[*Container]time.Time) bool {
	if c.shimPid > 0 && c.shimStart != 0 {
		return !r.shimAlive(c)
	}
	// A state file without the shim's identity: the main process's end,
	// plus a grace longer than any wind-down of the shim.
	if procStartTime(c.Pid) == c.startTime && c.startTime != 0 {
		return false
	}
	if mainGone[c].IsZero() {
		mainGone[c] = time.Now()
	}
	return time.Since(mainGone[c]) > legacyShimGrace
}

// Attempts returns a container's attempts, oldest first.
func (r *Runtime) Attempts(uid, name string) []*Container {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Container(nil), r.containers[key(uid, name)]...)
}

// Signal sends sig to the container's process group and to every process
// in its tracking cgroup (which catches those that left the group).
func (r *Runtime) Signal(c *Container, sig syscall.Signal) {
	if _, done := c.Exited(); done {
		return
	}
	_ = syscall.Kill(-c.pgid, sig)
	for _, pid := range r.cfg.Cgroups.procs(c.PodUID, c.Name, c.Attempt) {
		// Only those that left the group: a second SIGTERM would run a
		// shell's trap twice.
		if pg, err := syscall.Getpgid(pid); err == nil && pg != c.pgid {
			_ = syscall.Kill(pid, sig)
		}
	}
	if sig == syscall.SIGKILL {
		r.cfg.Cgroups.kill(c.PodUID, trackName(c.Name, c.Attempt))
	}
}

// Stop sends SIGTERM, waits until the container exits or grace ends, then
// sends SIGKILL and waits for the exit. It returns how the container ended.
func (r *Runtime) Stop(ctx context.Context, c *Container, grace time.Duration) Exit {
	if grace > 0 {
		r.Signal(c, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-c.Done():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if _, done := c.Exited(); !done {
		r.Signal(c, syscall.SIGKILL)
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			slog.Error("container did not end after SIGKILL", "pod_uid", c.PodUID, "container", c.Name, "pid", c.Pid)
		}
	}
	e, _ := c.Exited()
	return e
}

// RemovePod kills whatever still runs of a pod and deletes its folders and cgroups.
func (r *Runtime) RemovePod(uid string) error {
	r.mu.Lock()
	var running []*Container
	for k, list := range r.containers {
		if strings.HasPrefix(k, uid+"/") {
			for _, c := range list {
				if _, done := c.Exited(); !done {
					running = append(running, c)
				}
			}
			delete(r.containers, k)
		}
	}
	r.mu.Unlock()
	for _, c := range running {
		r.Stop(context.Background(), c, 0)
	}
	if err := r.cfg.Cgroups.removePod(uid); err != nil {
		slog.Warn("cannot remove pod cgroups", "pod_uid", uid, "err", err)
	}
	for _, pattern := range []string{filepath.Join(r.cfg.Root, "state", uid+"_*"), filepath.Join(r.cfg.Root, "logs", uid+"_*")} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
	return os.RemoveAll(r.PodDir(uid))
}

// StrayCgroupPods lists pod uids with cgroups but no state: leftovers to remove.
func (r *Runtime) StrayCgroupPods() []string {
	var out []string
	for _, uid := range r.cfg.Cgroups.podUIDs() {
		states, _ := filepath.Glob(filepath.Join(r.cfg.Root, "state", uid+"_*"))
		if _, err := os.Stat(r.PodDir(uid)); errors.Is(err, os.ErrNotExist) && len(states) == 0 {
			out = append(out, uid)
		}
	}
	return out
}

// KillCgroupPod kills and removes a stray pod cgroup.
func (r *Runtime) KillCgroupPod(uid string) {
	if c := r.cfg.Cgroups; c.Tracking() {
		entries, _ := os.ReadDir(filepath.Join(c.trackRoot, "pod"+uid))
		for _, e := range entries {
			c.kill(uid, e.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = r.cfg.Cgroups.removePod(uid)
}

func readStatus(prefix string) (shimStatus, error) {
	var s shimStatus
	err := readJSON(prefix+".status.json", &s)
	return s, err
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// procStartTime reads field 22 of /proc/<pid>/stat; 0 if the process is gone
// (or a zombie: it no longer runs).
func procStartTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// running lists the containers whose process has not ended.
func (r *Runtime) running() []*Container {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Container
	for _, list := range r.containers {
		for _, c := range list {
			if _, done := c.Exited(); !done {
				out = append(out, c)
			}
		}
	}
	return out
}

// RotateLogs rotates the log of every running container whose file has
// reached maxSize, keeping maxFiles files per container (the live one
// included), as the kubelet's container log manager does.
func (r *Runtime) RotateLogs(maxSize int64, maxFiles int) {
	for _, c := range r.running() {
		st, err := os.Stat(c.LogPath)
		if err != nil || st.Size() < maxSize {
			continue
		}
		if err := r.RotateLog(c, maxFiles); err != nil {
			slog.Warn("log rotation failed", "pod_uid", c.PodUID, "container", c.Name, "log", c.LogPath, "err", err)
		}
	}
}

// reopenWait bounds how long RotateLog waits for the shim's fresh file
// (a variable for tests).
var reopenWait = 5 * time.Second

// RotateLog rotates a running container's log by rename: <log>.1 .. <log>.N
// shift up (the oldest beyond keep-1 is dropped), the live file becomes
// <log>.1, and the shim, asked with SIGUSR1, opens a fresh file at the path
// (a CRI runtime's ReopenContainerLog). Only the shim writes the file, and
// it writes each line to exactly one of the two files, so no line is lost
// or doubled: there is no copy and no truncate. A follower that sees the
// path's inode change reads the rest of the old file, then the new one.
func (r *Runtime) RotateLog(c *Container, keep int) error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	if _, done := c.Exited(); done {
		return nil // an ended container's log no longer grows
	}
	if !r.shimAlive(c) {
		return nil // the container is ending: its log no longer grows
	}
	if keep < 2 {
		keep = 2 // the renamed file lives until the shim has let go of it
	}
	_ = os.Remove(c.LogPath + "." + strconv.Itoa(keep-1))
	for i := keep - 2; i >= 1; i-- {
		_ = os.Rename(c.LogPath+"."+strconv.Itoa(i), c.LogPath+"."+strconv.Itoa(i+1))
	}
	old := c.LogPath + ".1"
	if err := os.Rename(c.LogPath, old); err != nil {
		return err
	}
	if err := syscall.Kill(c.shimPid, syscall.SIGUSR1); err != nil {
		_ = os.Rename(old, c.LogPath)
		if err == syscall.ESRCH {
			return nil // the shim ended in between: its log no longer grows
		}
		return fmt.Errorf("ask the shim (pid %d) to reopen the log: %w", c.shimPid, err)
	}
	deadline := time.Now().Add(reopenWait)
	for {
		if _, err := os.Stat(c.LogPath); err == nil {
			return nil
		}
		_, done := c.Exited()
		if done || !r.shimAlive(c) {
			// The shim ended before reopening: nothing will create the path,
			// so the last file goes back to its place.
			if _, err := os.Stat(c.LogPath); errors.Is(err, os.ErrNotExist) {
				_ = os.Rename(old, c.LogPath)
			}
			return nil
		}
		if time.Now().After(deadline) {
			// The file goes back to the path, unless the shim made a fresh
			// one meanwhile (RENAME_NOREPLACE): with no file at the path,
			// RotateLogs would never look at this container again, and
			// the renamed file would grow for good. The shim, if it
			// reopens late, opens that same file; the next rotation tries
			// again.
			err := unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, c.LogPath, unix.RENAME_NOREPLACE)
			if errors.Is(err, unix.EEXIST) {
				return nil // the shim reopened just now
			}
			if err != nil {
				return fmt.Errorf("the shim (pid %d) did not reopen %s within %v, and the log cannot be put back: %w", c.shimPid, c.LogPath, reopenWait, err)
			}
			return fmt.Errorf("the shim (pid %d) did not reopen %s within %v; the log is back at its path for the next rotation", c.shimPid, c.LogPath, reopenWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shimAlive reports whether the container's shim still runs (same pid and
// start time as it recorded: never a process that reused the pid).
func (r *Runtime) shimAlive(c *Container) bool {
	return c.shimPid > 0 && c.shimStart != 0 && procStartTime(c.shimPid) == c.shimStart
}
