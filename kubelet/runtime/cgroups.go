package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Cgroups places containers in cgroups: a cgroup v2 folder per container to
// track and kill every process of it (CLONE_INTO_CGROUP, cgroup.kill), and
// memory and cpu limits in whichever hierarchy has those controllers (v1 on
// hybrid hosts, v2 on unified ones).
type Cgroups struct {
	trackRoot string // v2 folder for this node ("" if no v2)
	memRoot   string // folder whose children get memory limits
	cpuRoot   string // folder whose children get cpu limits
	memV2     bool   // memRoot/cpuRoot are v2 (memory.max, cpu.max)
}

// Limits reports whether memory and cpu limits can be enforced.
func (c *Cgroups) Limits() bool { return c != nil && c.memRoot != "" }

// Tracking reports whether containers get a v2 tracking cgroup.
func (c *Cgroups) Tracking() bool { return c != nil && c.trackRoot != "" }

type mount struct{ point, fstype, options string }

func mounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint opts ... - fstype source superopts
		line := sc.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre, post := strings.Fields(line[:sep]), strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 3 {
			continue
		}
		out = append(out, mount{point: pre[4], fstype: post[0], options: post[2]})
	}
	return out, sc.Err()
}

// ownPaths maps each v1 controller (and "" for v2) to this process's cgroup path.
func ownPaths() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			out[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out, nil
}

// DetectCgroups prepares this node's cgroup folders. It returns nil and the
// reason when cgroups cannot be used (not root, read-only, absent); the
// kubelet then runs containers without limits and says so.
func DetectCgroups(node string) (*Cgroups, string) {
	ms, err := mounts()
	if err != nil {
		return nil, "cannot read /proc/self/mountinfo: " + err.Error()
	}
	own, err := ownPaths()
	if err != nil {
		return nil, "cannot read /proc/self/cgroup: " + err.Error()
	}
	c := &Cgroups{}
	var reasons []string
	leaf := filepath.Join("kubelite", node)
	for _, m := range ms {
		if m.fstype != "cgroup2" || c.trackRoot != "" {
			continue
		}
		root := filepath.Join(m.point, own[""], leaf)
		if err := os.MkdirAll(root, 0o755); err != nil {
			reasons = append(reasons, fmt.Sprintf("cgroup v2 at %s: %v", m.point, err))
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "cgroup.kill")); err != nil {
			reasons = append(reasons, fmt.Sprintf("cgroup v2 at %s has no cgroup.kill (kernel < 5.14)", m.point))
			continue
		}
		c.trackRoot = root
		ctrl, _ := os.ReadFile(filepath.Join(m.point, "cgroup.controllers"))
		if hasWords(string(ctrl), "memory", "cpu") && enableControllers(m.point, root) == nil {
			c.memRoot, c.cpuRoot, c.memV2 = root, root, true
		}
	}
	if c.memRoot == "" {
		for _, m := range ms {
			if m.fstype != "cgroup" {
				continue
			}
			opts := "," + m.options + ","
			for _, ctl := range []string{"memory", "cpu"} {
				if !strings.Contains(opts, ","+ctl+",") {
					continue
				}
				root := filepath.Join(m.point, own[ctl], leaf)
				if err := os.MkdirAll(root, 0o755); err != nil {
					reasons = append(reasons, fmt.Sprintf("cgroup v1 %s at %s: %v", ctl, m.point, err))
					continue
				}
				if ctl == "memory" {
					c.memRoot = root
				} else {
					c.cpuRoot = root
				}
			}
		}
		if c.memRoot == "" || c.cpuRoot == "" {
			c.memRoot, c.cpuRoot = "", ""
		}
	}
	if !c.Tracking() && !c.Limits() {
		if len(reasons) == 0 {
			reasons = append(reasons, "no cgroup v1 memory/cpu or v2 hierarchy is mounted")
		}
		return nil, strings.Join(reasons, "; ")
	}
	if !c.Limits() {
		return c, "no writable memory and cpu cgroups: " + strings.Join(reasons, "; ")
	}
	return c, ""
}

func hasWords(s string, words ...string) bool {
	f := " " + strings.Join(strings.Fields(s), " ") + " "
	for _, w := range words {
		if !strings.Contains(f, " "+w+" ") {
			return false
		}
	}
	return true
}

// enableControllers turns on memory and cpu for the children of every
// folder from the mount down to root (cgroup v2's subtree_control).
func enableControllers(mountPoint, root string) error {
	rel, err := filepath.Rel(mountPoint, root)
	if err != nil {
		return err
	}
	dir := mountPoint
	for _, part := range append([]string{""}, strings.Split(rel, string(filepath.Separator))...) {
		dir = filepath.Join(dir, part)
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu"), 0); err != nil {
			return err
		}
	}
	return nil
}

// containerCgroups are the folders of one container.
type containerCgroups struct {
	track  string
	limits []string // v1 folders joined before exec
	memory string   // where the OOM counter is
}

// trackName is an attempt's tracking cgroup. Each attempt gets a fresh one:
// a cgroup that was killed (cgroup.kill) kills what is cloned into it
// right after, so it is never reused.
func trackName(name string, attempt int) string { return name + "." + strconv.Itoa(attempt) }

// prepare creates the container's folders and writes its limits.
func (c *Cgroups) prepare(podUID, name string, attempt int, memLimit, cpuMilli int64) (containerCgroups, error) {
	var out containerCgroups
	if c == nil {
		return out, nil
	}
	sub := filepath.Join("pod"+podUID, name)
	if c.Tracking() {
		out.track = filepath.Join(c.trackRoot, "pod"+podUID, trackName(name, attempt))
		if err := os.MkdirAll(out.track, 0o755); err != nil {
			return out, err
		}
	}
	if !c.Limits() || (memLimit == 0 && cpuMilli == 0) {
		return out, nil // nothing to limit: no limit cgroups to create
	}
	if c.memV2 {
		// Limits live in the tracking cgroup itself (fresh per attempt, so
		// the OOM counter starts at zero).
		out.memory = out.track
		if memLimit > 0 {
			if err := os.WriteFile(filepath.Join(out.track, "memory.max"), []byte(strconv.FormatInt(memLimit, 10)), 0); err != nil {
				return out, err
			}
			_ = os.WriteFile(filepath.Join(out.track, "memory.swap.max"), []byte("0"), 0)
		}
		if cpuMilli > 0 {
			if err := os.WriteFile(filepath.Join(out.track, "cpu.max"), []byte(fmt.Sprintf("%d 100000", cpuMilli*100)), 0); err != nil {
				return out, err
			}
		}
		return out, nil
	}
	mem, cpu := filepath.Join(c.memRoot, sub), filepath.Join(c.cpuRoot, sub)
	for _, d := range []string{mem, cpu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return out, err
		}
	}
	limit := "-1"
	if memLimit > 0 {
		limit = strconv.FormatInt(memLimit, 10)
	}
	if err := os.WriteFile(filepath.Join(mem, "memory.limit_in_bytes"), []byte(limit), 0); err != nil {
		return out, err
	}
	if memLimit > 0 {
		// Without swap accounting this file is absent; then swap is off anyway here.
		_ = os.WriteFile(filepath.Join(mem, "memory.swappiness"), []byte("0"), 0)
	}
	quota := "-1"
	if cpuMilli > 0 {
		quota = strconv.FormatInt(cpuMilli*100, 10)
		_ = os.WriteFile(filepath.Join(cpu, "cpu.cfs_period_us"), []byte("100000"), 0)
	}
	if err := os.WriteFile(filepath.Join(cpu, "cpu.cfs_quota_us"), []byte(quota), 0); err != nil {
		return out, err
	}
	out.limits = []string{mem, cpu}
	out.memory = mem
	return out, nil
}

// procs lists the pids in the container's tracking cgroup.
func (c *Cgroups) procs(podUID, name string, attempt int) []int {
	if !c.Tracking() {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.trackRoot, "pod"+podUID, trackName(name, attempt), "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// kill kills every process in the container's tracking cgroup.
func (c *Cgroups) kill(podUID, dir string) {
	if c.Tracking() {
		_ = os.WriteFile(filepath.Join(c.trackRoot, "pod"+podUID, dir, "cgroup.kill"), []byte("1"), 0)
	}
}

// removePod deletes the pod's folders (they must be empty of processes).
func (c *Cgroups) removePod(podUID string) error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, root := range []string{c.trackRoot, c.memRoot, c.cpuRoot} {
		if root == "" {
			continue
		}
		dir := filepath.Join(root, "pod"+podUID)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// podUIDs lists the pods that have cgroup folders on this node.
func (c *Cgroups) podUIDs() []string {
	if c == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, root := range []string{c.trackRoot, c.memRoot, c.cpuRoot} {
		if root == "" {
			continue
		}
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if uid, ok := strings.CutPrefix(e.Name(), "pod"); ok && e.IsDir() {
				seen[uid] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for uid := range seen {
		out = append(out, uid)
	}
	return out
}

// removeTrack deletes an ended attempt's tracking cgroup (empty by then).
func (c *Cgroups) removeTrack(podUID, name string, attempt int) {
	if c.Tracking() {
		_ = os.Remove(filepath.Join(c.trackRoot, "pod"+podUID, trackName(name, attempt)))
	}
}
