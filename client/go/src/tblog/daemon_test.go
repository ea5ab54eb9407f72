package tblog

// The real tblogd ($TBLOGD_BINARY) for the end-to-end tests: spawned on a unix
// socket in a temporary directory ($TBLOG_GO_KEEP_LOGS/<test> when set, kept),
// stopped (or killed, and started again on the same logdir and socket) by the
// tests; `tblogd inspect --json` reads what it wrote.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type daemon struct {
	binary  string
	logdir  string
	socket  string
	address string
	dir     string
	args    []string
	stderr  *lockedBuffer // of the current process
	cmd     *exec.Cmd
	exited  chan struct{}
}

// lockedBuffer is tblogd's stderr, written by exec's goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDaemon spawns tblogd (with `extra` flags, e.g. TLS) and waits until it
// listens; it is stopped when the test ends.
func startDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	binary := os.Getenv("TBLOGD_BINARY")
	if binary == "" {
		t.Skip("TBLOGD_BINARY is not set")
	}
	dir := t.TempDir()
	if keep := os.Getenv("TBLOG_GO_KEEP_LOGS"); keep != "" {
		// Kept for a look afterwards (TensorBoard, tblogd inspect).
		dir = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{binary: binary, dir: dir, logdir: filepath.Join(dir, "logs"),
		socket: filepath.Join(dir, "tblogd.sock")}
	d.address = "unix:" + d.socket
	if err := os.Mkdir(d.logdir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.args = append([]string{"--logdir", d.logdir, "--unix-socket", d.socket}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--listen") {
		d.args = append(d.args, "--listen", "")
	}
	d.start(t)
	t.Cleanup(func() { d.stop(t, os.Interrupt) })
	return d
}

// start runs tblogd (again) and waits for its "listening on" line.
func (d *daemon) start(t testing.TB) {
	t.Helper()
	d.stderr = &lockedBuffer{}
	d.cmd = exec.Command(d.binary, d.args...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", d.binary, err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func(cmd *exec.Cmd) {
		cmd.Wait()
		close(exited)
	}(d.cmd)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.stderr.String(), " listening on ") {
		select {
		case <-exited:
			t.Fatalf("tblogd exited before listening:\n%s", d.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tblogd did not listen on %s:\n%s", d.socket, d.stderr.String())
		}
	}
}

// stop signals tblogd (os.Interrupt: drain and exit; syscall.SIGKILL: a
// crash) and waits for it to exit.
func (d *daemon) stop(t testing.TB, signal os.Signal) {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(signal)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.exited
		t.Errorf("tblogd did not exit on %v", signal)
	}
	d.cmd = nil
}

type tagReport struct {
	Tag        string   `json:"tag"`
	Kind       string   `json:"kind"`
	Count      int64    `json:"count"`
	FirstStep  int64    `json:"first_step"`
	LastStep   int64    `json:"last_step"`
	LastScalar *float64 `json:"last_scalar"`
}

// inspect returns run name -> tag -> report from `tblogd inspect --json`.
func (d *daemon) inspect(t *testing.T) map[string]map[string]tagReport {
	t.Helper()
	out, err := exec.Command(d.binary, "inspect", "--json", d.logdir).Output()
	if err != nil {
		t.Fatalf("tblogd inspect: %v", err)
	}
	var report struct {
		Runs []struct {
			Name  string `json:"name"`
			Files []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"files"`
			Tags []tagReport `json:"tags"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("inspect output: %v\n%s", err, out)
	}
	runs := map[string]map[string]tagReport{}
	for _, run := range report.Runs {
		for _, f := range run.Files {
			if f.State != "ok" {
				t.Errorf("%s/%s: state %s", run.Name, f.Name, f.State)
			}
		}
		tags := map[string]tagReport{}
		for _, tag := range run.Tags {
			tags[tag.Tag] = tag
		}
		runs[run.Name] = tags
	}
	return runs
}

// openWriter opens a Writer on d (opts.Address set to it); fails the test
// if that fails.
func openWriter(t testing.TB, ctx context.Context, d *daemon, opts Options) *Writer {
	t.Helper()
	opts.Address = d.address
	w, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
