// Command kubelet-shim supervises one container process for the kubelet.
//
// The kubelet starts one shim per container start, in a session of its own,
// so the shim and its workload outlive a kubelet crash. The shim:
//   - becomes a subreaper, so the workload's orphaned children are its to reap;
//   - starts the workload in its own process group, inside the container's
//     tracking cgroup (cgroup v2, atomically, CLONE_INTO_CGROUP) and its
//     limit cgroups (cgroup v1 memory and cpu, joined before exec);
//   - copies stdout and stderr (pipes) into the container's log file, in
//     the CRI log format, lines split at 16 KiB; it alone writes the file,
//     so the kubelet rotates it by rename and SIGUSR1 makes the shim reopen
//     it; a failed write (full disk) drops output, never blocks the
//     workload, and is reported (start pipe, <prefix>.logerr.json, status);
//   - writes <prefix>.state.json (pid, pgid, process start time) once
//     started, and <prefix>.status.json (exit code, signal, OOM) when it
//     ends, each atomically;
//   - after the workload's main process exits, kills what is left of the
//     container (its group, while the leader is still an unreaped zombie;
//     its cgroup; and every descendant, which finds setsid'd ones without
//     cgroups, each killed through a pidfd checked against pid reuse) and
//     reaps it before it reports the exit, so no process and no zombie
//     outlives it; those still there after 10 s are counted in the status
//     (survivors); the shim itself ends last, so no writer of its pipes
//     ever gets SIGPIPE.
//
// It imports little on purpose: one runs per container, so its memory is
// counted per pod.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Spec is what the kubelet asks for, read as JSON from fd 4.
// Its twin is kubelet/runtime.ShimSpec.
type Spec struct {
	Command    []string `json:"command"`
	Env        []string `json:"env"`
	WorkingDir string   `json:"workingDir"`
	LogPath    string   `json:"logPath"`
	// TrackCgroup is a cgroup v2 folder the workload is cloned into (optional).
	TrackCgroup string `json:"trackCgroup,omitempty"`
	// LimitCgroups are cgroup v1 folders (memory, cpu) joined before exec.
	LimitCgroups []string `json:"limitCgroups,omitempty"`
	// MemoryCgroup is the v1 memory folder whose oom_kill counter tells OOM.
	MemoryCgroup string `json:"memoryCgroup,omitempty"`
}

// State is state.json: what identifies the running workload.
type State struct {
	Pid       int    `json:"pid"`
	Pgid      int    `json:"pgid"`
	StartTime uint64 `json:"startTime"` // /proc/<pid>/stat field 22, against pid reuse
	StartedAt string `json:"startedAt"`
	ShimPid   int    `json:"shimPid"`
	// ShimStartTime is the shim's own start time, so the kubelet can
	// signal it (log reopen) after a restart without hitting a reused pid.
	ShimStartTime uint64 `json:"shimStartTime"`
}

// Status is status.json: how the workload ended, or why it never started.
type Status struct {
	StartError string `json:"startError,omitempty"`
	ExitCode   int    `json:"exitCode"`
	Signal     int    `json:"signal,omitempty"`
	OOMKilled  bool   `json:"oomKilled,omitempty"`
	FinishedAt string `json:"finishedAt"`
	// LogError is the first failed write to the log file (a full disk);
	// LogDroppedBytes counts the output lost to failed writes.
	LogError        string `json:"logError,omitempty"`
	LogDroppedBytes int64  `json:"logDroppedBytes,omitempty"`
	// Survivors counts the container's processes still there when the
	// shim gave up killing them (after killWait): they outlive it.
	Survivors int `json:"survivors,omitempty"`
}

func main() {
	debug.SetGCPercent(20)
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubelet-shim STATE_PREFIX (started by the kubelet: spec on fd 4, start result on fd 3)")
		os.Exit(2)
	}
	dir := os.Args[1]
	// The kubelet's pipes are the shim's own: the workload must not inherit them.
	syscall.CloseOnExec(3)
	syscall.CloseOnExec(4)
	ready := os.NewFile(3, "ready") // the kubelet reads the start result here
	specIn := os.NewFile(4, "spec") // the kubelet writes the spec here
	status := run(dir, ready, specIn)
	status.FinishedAt = time.Now().UTC().Format(time.RFC3339Nano)
	if err := writeJSON(dir+".status.json", status); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet-shim: write status:", err)
		os.Exit(1)
	}
	if status.StartError != "" && ready != nil {
		_, _ = ready.Write([]byte("error\n"))
	}
}

// defaultPath is the PATH of a container whose env names none (an image's usual one).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	// No fsync: the rename makes the write atomic for the crashes that
	// matter here (kubelet, shim); a power loss ends the workloads anyway.
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func run(dir string, ready, specIn *os.File) Status {
	// SIGUSR1 asks for a reopen of the log file: the kubelet renamed it to
	// rotate it, and lines from now on go to a fresh file at the path. The
	// handler is in place before the kubelet learns the shim's pid (whose
	// default action for SIGUSR1 would be to die).
	reopen := make(chan os.Signal, 1)
	// It stays caught until the shim exits: a late one must not kill it
	// before it writes the status.
	signal.Notify(reopen, syscall.SIGUSR1)
	if err := setSubreaper(); err != nil {
		return Status{StartError: "subreaper: " + err.Error()}
	}
	var spec Spec
	if specIn == nil {
		return Status{StartError: "no spec on fd 4"}
	}
	err := json.NewDecoder(specIn).Decode(&spec)
	specIn.Close()
	if err != nil {
		return Status{StartError: "read spec: " + err.Error()}
	}
	if len(spec.Command) == 0 {
		return Status{StartError: "the spec has no command"}
	}
	logFile, err := openLog(spec.LogPath)
	if err != nil {
		return Status{StartError: "open log: " + err.Error()}
	}

	// The command is looked up in the container's PATH, as a runtime does.
	path := defaultPath
	for _, e := range spec.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	_ = os.Setenv("PATH", path)
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.WorkingDir
	outR, outW, err := os.Pipe()
	if err != nil {
		return Status{StartError: err.Error()}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return Status{StartError: err.Error()}
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.TrackCgroup != "" {
		fd, err := syscall.Open(spec.TrackCgroup, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return Status{StartError: "open tracking cgroup: " + err.Error()}
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	oomBefore := oomKills(spec.MemoryCgroup)
	if err := startInCgroups(cmd, spec.LimitCgroups); err != nil {
		outW.Close()
		errW.Close()
		return Status{StartError: startErrorMessage(spec.Command[0], err)}
	}
	outW.Close()
	errW.Close()
	pid := cmd.Process.Pid
	st := State{Pid: pid, Pgid: pid, StartTime: procStartTime(pid), StartedAt: time.Now().UTC().Format(time.RFC3339Nano), ShimPid: os.Getpid(), ShimStartTime: procStartTime(os.Getpid())}
	if err := writeJSON(dir+".state.json", st); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	if ready != nil {
		// The pipe stays open: it carries log write failures to the kubelet
		// while it runs, without needing the (maybe full) disk.
		_, _ = ready.Write([]byte("started\n"))
	}

	sink := newLogSink(spec.LogPath, logFile, dir+".logerr.json")
	sink.notify = startNotifier(ready)
	go func() {
		for range reopen {
			sink.reopen()
		}
	}()
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); copyLog(sink, outR, "stdout") }()
	go func() { defer copiers.Done(); copyLog(sink, errR, "stderr") }()

	waitExit(pid)
	// The main process is gone: nothing of the container may outlive it,
	// as when a container's PID 1 ends and the kernel kills its namespace.
	// It is a zombie until reaped below, so its pid, and with it the
	// group's id, cannot have been taken by another process yet.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	ws := reap(pid)
	if spec.TrackCgroup != "" {
		_ = os.WriteFile(filepath.Join(spec.TrackCgroup, "cgroup.kill"), []byte("1"), 0)
	}
	// Without a cgroup, a descendant that left the process group (setsid)
	// is found as a descendant of this subreaper.
	survivors := killDescendants(killWait)
	if survivors > 0 {
		fmt.Fprintf(os.Stderr, "kubelet-shim: %d descendants of the container survived %v of SIGKILL; they outlive it\n", survivors, killWait)
	}
	// Every writer is dead, so the pipes are at EOF once drained; a process
	// outside the tree holding them (passed over a socket) must not hold
	// the exit status back.
	copied := make(chan struct{})
	go func() { copiers.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}

	s := Status{}
	switch {
	case ws.Exited():
		s.ExitCode = ws.ExitStatus()
	case ws.Signaled():
		s.Signal = int(ws.Signal())
		s.ExitCode = 128 + s.Signal
	}
	if s.Signal == int(syscall.SIGKILL) && oomKills(spec.MemoryCgroup) > oomBefore {
		s.OOMKilled = true
	}
	s.Survivors = survivors
	s.LogError, s.LogDroppedBytes = sink.failure()
	sink.close()
	return s
}

// killWait bounds how long the shim kills and reaps the container's
// descendants before it reports the exit anyway.
const killWait = 10 * time.Second

// startInCgroups starts cmd from a thread that has joined the v1 limit
// cgroups, so the workload is inside them from its first instruction (moving
// a started process lets early children escape), then moves the thread back.
func startInCgroups(cmd *exec.Cmd, cgroups []string) error {
	if len(cgroups) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := strconv.Itoa(syscall.Gettid())
	var back []string
	for _, cg := range cgroups {
		orig, err := ownCgroup(cg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cg, "tasks"), []byte(tid), 0); err != nil {
			return fmt.Errorf("join %s: %w", cg, err)
		}
		back = append(back, orig)
	}
	err := cmd.Start()
	for _, orig := range back {
		_ = os.WriteFile(filepath.Join(orig, "tasks"), []byte(tid), 0)
	}
	return err
}

// ownCgroup finds the folder of the hierarchy holding cg that this thread is in now.
func ownCgroup(cg string) (string, error) {
	// cg is <mount>/<path>; the mount is /sys/fs/cgroup/<controller>.
	parts := strings.SplitN(strings.TrimPrefix(cg, "/sys/fs/cgroup/"), "/", 2)
	if len(parts) == 0 {
		return "", fmt.Errorf("cgroup %s is not under /sys/fs/cgroup", cg)
	}
	controller := parts[0]
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, f[2]), nil
			}
		}
	}
	return "", fmt.Errorf("no %s cgroup for this thread", controller)
}

func startErrorMessage(bin string, err error) string {
	return fmt.Sprintf("failed to start container process %q: %v", bin, err)
}

// waitExit reaps every other child (as subreaper, also orphaned
// descendants) until pid has exited, and returns with pid still a zombie
// (waitid WNOWAIT), so its pid and process group id stay reserved until
// reap.
func waitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		got := siginfoPid(&info)
		if got == pid {
			return
		}
		if got > 0 {
			var ws syscall.WaitStatus
			for {
				if _, err := syscall.Wait4(got, &ws, 0, nil); err != syscall.EINTR {
					break
				}
			}
		}
	}
}

// siginfoPid is si_pid of a SIGCHLD siginfo: after si_signo, si_errno,
// si_code and, on 64-bit, padding to align the union.
func siginfoPid(info *unix.Siginfo) int {
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}

// reap reaps pid and returns its wait status.
func reap(pid int) syscall.WaitStatus {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			return ws
		}
	}
}

// procStartTime reads field 22 of /proc/<pid>/stat (start time in ticks).
func procStartTime(pid int) uint64 {
	f := procStatFields(pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// procStatFields reads /proc/<pid>/stat and returns the fields after the
// command name (field 3 onwards), counted from the last ')' since the name
// may hold spaces and parentheses; nil if the process is gone.
func procStatFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// oomKills reads the oom_kill counter of a memory cgroup: v1
// memory.oom_control or v2 memory.events.
func oomKills(cg string) int {
	if cg == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(cg, "memory.oom_control"))
	if err != nil {
		if b, err = os.ReadFile(filepath.Join(cg, "memory.events")); err != nil {
			return 0
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

func setSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
