// Package scriptstest tests the shell scripts in scripts/.
package scriptstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTime reads field 22 of /proc/<pid>/stat.
func startTime(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[19]
}

func bootID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// lookalike starts a copy of sleep as <state>/bin/<name>: with name
// "kubelet" its command line passes down.sh's name check (".../bin/kubelet
// ..."), as a pid reused by a stranger that even looks like ours would.
func lookalike(t *testing.T, state, name string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	bin := filepath.Join(state, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, name)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd, done
}

func runDown(t *testing.T, state string) string {
	t.Helper()
	cmd := exec.Command("bash", "../down.sh")
	cmd.Env = append(os.Environ(), "KUBELITE_STATE="+state)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("down.sh: %v\n%s", err, out)
	}
	return string(out)
}

func writePidFile(t *testing.T, state, line string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(state, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "pids", "kubelet-node-1.pid"), []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// down.sh never signals a recorded pid that is now another process: a
// different start time or another boot, or, for a pid file of an older
// up.sh (the pid alone), a process that does not run our binary.
func TestDownSparesAReusedPid(t *testing.T) {
	for name, tc := range map[string]struct {
		bin    string
		record func(pid int, start, boot string) string
	}{
		"wrong start time": {"kubelet", func(pid int, start, boot string) string {
			n, _ := strconv.ParseUint(start, 10, 64)
			return fmt.Sprintf("%d %d %s", pid, n+1, boot)
		}},
		"wrong boot id": {"kubelet", func(pid int, start, boot string) string {
			return fmt.Sprintf("%d %s %s", pid, start, "00000000-0000-0000-0000-000000000000")
		}},
		"old pid file, another program": {"stranger", func(pid int, start, boot string) string { return strconv.Itoa(pid) }},
	} {
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			cmd, done := lookalike(t, state, tc.bin)
			pid := cmd.Process.Pid
			writePidFile(t, state, tc.record(pid, startTime(t, pid), bootID(t)))
			out := runDown(t, state)
			select {
			case <-done:
				t.Fatalf("down.sh killed pid %d, which is not the recorded process; it said:\n%s", pid, out)
			case <-time.After(300 * time.Millisecond):
			}
			if strings.Contains(out, "stopped kubelet-node-1") {
				t.Errorf("down.sh claims to have stopped it:\n%s", out)
			}
		})
	}
}

// A pid file of an older up.sh holds the pid alone: the daemon it names
// (running our binary) is stopped, not forgotten, and down.sh says how it
// checked it.
func TestDownStopsTheDaemonOfAnOldPidFile(t *testing.T) {
	state := t.TempDir()
	cmd, done := lookalike(t, state, "kubelet")
	pid := cmd.Process.Pid
	writePidFile(t, state, strconv.Itoa(pid))
	out := runDown(t, state)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("down.sh left the daemon %d of an old pid file running; it said:\n%s", pid, out)
	}
	if !strings.Contains(out, "older up.sh") || !strings.Contains(out, "stopped kubelet-node-1") {
		t.Errorf("down.sh should say it checked an old pid file by the command line, and stopped it:\n%s", out)
	}
}

// up.sh's alive (is the recorded daemon running? then it is not started
// twice) reads old pid files (the pid alone) by the command line too.
func TestUpSeesTheDaemonOfAnOldPidFile(t *testing.T) {
	for name, tc := range map[string]struct {
		bin  string
		want bool
	}{"our binary": {"kubelet", true}, "another program": {"stranger", false}} {
		t.Run(name, func(t *testing.T) {
			state := t.TempDir()
			cmd, _ := lookalike(t, state, tc.bin)
			writePidFile(t, state, strconv.Itoa(cmd.Process.Pid))
			// up.sh's helper functions, without the rest of it (which builds and starts a cluster).
			script := `set -euo pipefail; state="$1"
eval "$(sed -n '/^old_pid_files_told=/p; /^binary() {/,/^}/p; /^start_time() {/,/^}/p; /^boot_id() {/p; /^runs_bin() {/,/^}/p; /^alive() {/,/^}/p' ../up.sh)"
if alive kubelet-node-1; then echo ALIVE; else echo NOT-ALIVE; fi`
			out, err := exec.Command("bash", "-c", script, "bash", state).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := strings.Contains(string(out), "\nALIVE") || strings.HasPrefix(string(out), "ALIVE"); got != tc.want {
				t.Errorf("alive = %v, want %v; it said:\n%s", got, tc.want, out)
			}
			if !strings.Contains(string(out), "older up.sh") {
				t.Errorf("up.sh should say it checks an old pid file by the command line:\n%s", out)
			}
		})
	}
}

// A correctly recorded process is stopped.
func TestDownStopsTheRecordedProcess(t *testing.T) {
	state := t.TempDir()
	cmd, done := lookalike(t, state, "kubelet")
	pid := cmd.Process.Pid
	writePidFile(t, state, fmt.Sprintf("%d %s %s", pid, startTime(t, pid), bootID(t)))
	out := runDown(t, state)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("down.sh left the recorded process %d running; it said:\n%s", pid, out)
	}
	if _, err := os.Stat(filepath.Join(state, "pids", "kubelet-node-1.pid")); !os.IsNotExist(err) {
		t.Errorf("the pid file is still there: %v", err)
	}
}

// down.sh sends a container group its SIGKILL only while the group's
// leader is still the process the shim recorded: once the leader is gone
// its group id may be taken by a stranger (here: a member left in the old
// group stands for it, and must not be killed).
func TestDownRechecksTheLeaderBeforeTheKill(t *testing.T) {
	state := t.TempDir()
	dir := t.TempDir()
	// The leader exits on SIGTERM; a member of its group ignores SIGTERM.
	leader := exec.Command("sh", "-c", `(trap '' TERM; exec sleep 1000) & echo $! > member.pid; trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	leader.Dir = dir
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	leaderDone := make(chan struct{})
	go func() { _ = leader.Wait(); close(leaderDone) }()
	pgid := leader.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL); <-leaderDone })
	var member int
	for deadline := time.Now().Add(20 * time.Second); member == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "member.pid"))
		member, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("the member never started")
		}
	}
	stateDir := filepath.Join(state, "kubelet-node-1", "state")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"pid":%d,"pgid":%d,"startTime":%s}`, pgid, pgid, startTime(t, pgid))
	if err := os.WriteFile(filepath.Join(stateDir, "u_c_0.state.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runDown(t, state)
	select {
	case <-leaderDone:
	default:
		t.Fatalf("the leader did not get its SIGTERM; down.sh said:\n%s", out)
	}
	// Killed, the member would be gone or a zombie (its reaper is PID 1 now).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", member)); err != nil || strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])[0] == "Z" {
		t.Errorf("down.sh sent SIGKILL to group %d after its leader was gone; it said:\n%s", pgid, out)
	}
	_ = syscall.Kill(member, syscall.SIGKILL)
}
