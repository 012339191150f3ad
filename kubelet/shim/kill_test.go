package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func startSleep(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd, done
}

// The pid list of the /proc walk may be stale by the time of the kill: a
// listed process died, was reaped by its parent, and a stranger got its
// pid. A pid whose parent is neither the one it was found under nor the
// shim is not the descendant that was listed, and is spared.
func TestKillSparesAPidTakenByAStranger(t *testing.T) {
	stranger, strangerDone := startSleep(t) // its parent is this test, not the listed one
	child, childDone := startSleep(t)
	self := os.Getpid()
	const gone = 1 << 22 // a parent pid that no process has (above pid_max's default)
	killListed([]proc{{pid: stranger.Process.Pid, parent: gone}, {pid: child.Process.Pid, parent: self}}, gone+1)
	select {
	case <-strangerDone:
		t.Fatalf("pid %d was killed, though its parent is not the process it was listed under", stranger.Process.Pid)
	case <-time.After(300 * time.Millisecond):
	}
	select {
	case <-childDone:
	case <-time.After(20 * time.Second):
		t.Fatalf("the listed child %d (parent as listed) was not killed", child.Process.Pid)
	}
}

// An orphan reparented to the shim (its parent as listed was killed first)
// is still killed.
func TestKillReachesAnOrphanOfTheShim(t *testing.T) {
	orphan, done := startSleep(t) // this test stands for the shim, its parent now
	killListed([]proc{{pid: orphan.Process.Pid, parent: 1 << 22}}, os.Getpid())
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the orphan %d, now a child of the shim, was not killed", orphan.Process.Pid)
	}
}

// When the time to kill is up with descendants left (a process stuck in
// the kernel ignores SIGKILL for as long as it is stuck), the shim says
// how many: they are not left without a trace.
func TestSurvivorsOfTheKillAreCounted(t *testing.T) {
	stuck, _ := startSleep(t)
	_, killedDone := startSleep(t)
	sendKill = func(p proc, self int) bool {
		if p.pid == stuck.Process.Pid {
			return false // as a process in uninterruptible sleep
		}
		return killVerified(p, self)
	}
	t.Cleanup(func() { sendKill = killVerified })
	if n := killDescendants(300 * time.Millisecond); n != 1 {
		t.Errorf("killDescendants = %d survivors, want 1", n)
	}
	select {
	case <-killedDone:
	case <-time.After(20 * time.Second):
		t.Fatal("the killable descendant was not killed")
	}
}
