// Package prober runs liveness, readiness and startup probes and lifecycle
// hooks: exec (a process with the container's env and folder), tcpSocket
// and httpGet against the node's address.
package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubelite/kubelite/internal/api"
	v1 "github.com/kubelite/kubelite/proto/kubelite/v1"
)

// Target is where a container's probes go.
type Target struct {
	Host       string // default host for tcpSocket and httpGet
	Env        []string
	WorkingDir string
	Ports      []*v1.ContainerPort
}

func (t Target) port(p string) (int, error) {
	if n, err := strconv.Atoi(p); err == nil {
		return n, nil
	}
	for _, cp := range t.Ports {
		if cp.Name == p {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q is not a number nor a named container port", p)
}

// Action runs one handler (probe or hook) with a timeout and says whether it
// succeeded, with a message for events.
func Action(ctx context.Context, t Target, exec_ *v1.ExecAction, get *v1.HTTPGetAction, tcp *v1.TCPSocketAction, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case exec_ != nil:
		return runExec(ctx, t, exec_.Command)
	case get != nil:
		return runHTTP(ctx, t, get, timeout)
	case tcp != nil:
		port, err := t.port(tcp.Port)
		if err != nil {
			return false, err.Error()
		}
		host := tcp.Host
		if host == "" {
			host = t.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, fmt.Sprintf("dial tcp %s:%d: %v", host, port, errText(err))
		}
		conn.Close()
		return true, ""
	}
	return false, "no handler"
}

func errText(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func runExec(ctx context.Context, t Target, command []string) (bool, string) {
	if len(command) == 0 {
		return false, "empty command"
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = t.Env
	cmd.Dir = t.WorkingDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out := &limitedBuffer{limit: maxExecOutput}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return false, fmt.Sprintf("command %q timed out", strings.Join(command, " "))
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return false, msg
	}
	return true, ""
}

// maxExecOutput is how much of an exec probe's or hook's output the
// kubelet keeps (Kubernetes: 10 KiB, pkg/probe/exec maxReadLength): a probe
// that prints megabytes must not grow the kubelet's memory.
const maxExecOutput = 10 << 10

// limitedBuffer keeps the first limit bytes written to it and drops the
// rest, while still accepting every write: the command runs to its end
// instead of dying of a broken pipe, and its exit code still counts.
type limitedBuffer struct {
	limit int
	buf   []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return string(b.buf) }

func runHTTP(ctx context.Context, t Target, g *v1.HTTPGetAction, timeout time.Duration) (bool, string) {
	port, err := t.port(g.Port)
	if err != nil {
		return false, err.Error()
	}
	host := g.Host
	if host == "" {
		host = t.Host
	}
	scheme := strings.ToLower(g.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/kubelite")
	for _, h := range g.HttpHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return false, fmt.Sprintf("Get %q: %s", url, errText(err))
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return true, ""
}

// Kind names a probe.
type Kind string

// The three probes.
const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// Worker runs one probe of one container start until ctx ends, calling
// report whenever the result changes (after thresholds) and fail on every
// failed attempt (for the Unhealthy event).
type Worker struct {
	Kind   Kind
	Probe  *v1.Probe
	Target Target
	// Gate, if set, must return true before the probe runs (liveness and
	// readiness wait for the startup probe).
	Gate   func() bool
	Report func(ok bool)
	Fail   func(msg string)
}

// Run probes until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	p := w.Probe
	period := api.SecondsToDuration(int64(max(p.PeriodSeconds, 1)))
	timeout := api.SecondsToDuration(int64(max(p.TimeoutSeconds, 1)))
	select {
	case <-ctx.Done():
		return
	case <-time.After(api.SecondsToDuration(int64(p.InitialDelaySeconds))):
	}
	var successes, failures int32
	var last *bool
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if w.Gate == nil || w.Gate() {
			ok, msg := Action(ctx, w.Target, p.Exec, p.HttpGet, p.TcpSocket, timeout)
			if ctx.Err() != nil {
				return
			}
			if ok {
				successes, failures = successes+1, 0
				if successes >= max(p.SuccessThreshold, 1) && (last == nil || !*last) {
					v := true
					last = &v
					w.Report(true)
				}
			} else {
				successes, failures = 0, failures+1
				if w.Fail != nil {
					w.Fail(msg)
				}
				if failures >= max(p.FailureThreshold, 1) && (last == nil || *last) {
					v := false
					last = &v
					w.Report(false)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
