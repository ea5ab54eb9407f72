package tblog

// End-to-end tests against the real tblogd ($TBLOGD_BINARY, daemon_test.go);
// what it wrote is checked with `tblogd inspect --json`. Run by
// client/go/run_tests.sh.

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestEveryMethodReachesTheEventFiles(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w, err := Open(ctx, Options{Address: d.address, RunPath: "go/every",
		HParams: map[string]interface{}{"lr": 0.01, "layers": 3, "optimizer": "adam", "warmup": true}})
	if err != nil {
		t.Fatal(err)
	}
	if w.RunPath != "go/every" || !filepath.IsAbs(w.Directory) {
		t.Fatalf("OpenRun answered run_path %q, directory %q", w.RunPath, w.Directory)
	}
	for step := int64(0); step < 10; step++ {
		if err := w.Scalar("loss", step, float32(1/float64(step+1))); err != nil {
			t.Fatal(err)
		}
	}
	w.ScalarIn("validation", "accuracy", 9, 0.75)
	w.Histogram("weights", 1, []float64{0.5, -1, 2, 3.25}, HistogramOptions{})
	w.Histogram("grads", 2, []float64{0.1, 0.2, -0.3}, HistogramOptions{Exponential: true})
	w.Histogram("few", 2, []float64{1, 2, 3}, HistogramOptions{Buckets: 4})
	w.Text("notes", 4, "# hello\n*from go*")
	w.Scalar("loss", 10, 0.05) // after other records: a second ScalarColumns record
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	runs := d.inspect(t)
	run, ok := runs["go/every"]
	if !ok {
		t.Fatalf("run go/every missing: %v", runs)
	}
	loss := run["loss"]
	if loss.Kind != "scalar" || loss.Count != 11 || loss.FirstStep != 0 || loss.LastStep != 10 {
		t.Errorf("loss: %+v", loss)
	}
	if loss.LastScalar == nil || math.Abs(*loss.LastScalar-0.05) > 1e-6 {
		t.Errorf("loss last scalar: %v", loss.LastScalar)
	}
	for tag, kind := range map[string]string{"weights": "histogram", "grads": "histogram", "few": "histogram", "notes": "text"} {
		if run[tag].Kind != kind {
			t.Errorf("%s: kind %q, want %q", tag, run[tag].Kind, kind)
		}
	}
	hasHParams := false
	for _, tag := range run {
		hasHParams = hasHParams || tag.Kind == "hparams"
	}
	if !hasHParams {
		t.Errorf("no hparams tag in %v", run)
	}
	if acc := runs["go/every/validation"]["accuracy"]; acc.Count != 1 || acc.LastStep != 9 {
		t.Errorf("validation accuracy: %+v", acc)
	}

	w.Scalar("loss", 11, 0.04)
	if err := w.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if n := d.inspect(t)["go/every"]["loss"].Count; n != 12 {
		t.Errorf("after Sync: %d loss points, want 12", n)
	}
	w.Scalar("loss", 12, 0.03) // sent by Close
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := d.inspect(t)["go/every"]["loss"].Count; n != 13 {
		t.Errorf("after Close: %d loss points, want 13", n)
	}
	if err := w.Scalar("loss", 13, 0); err == nil {
		t.Error("Scalar after Close succeeded")
	}
}

func TestRejectedRecordSurfacesAndNeighboursAreWritten(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/bad", SendInterval: -1})
	w.Scalar("good", 1, 1.5)
	w.Text("bad\x01tag", 1, "control character in the tag")
	w.Text("fine", 1, "after the bad one")
	err := w.Flush(ctx)
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("Flush: %v, want an *Error", err)
	}
	if e.Code != codes.InvalidArgument || len(e.Errors) != 1 || e.Errors[0].Index != 1 {
		t.Fatalf("Flush: code %v, errors %v", e.Code, e.Errors)
	}
	if e.Errors[0].Message == "" || !strings.Contains(e.Error(), e.Errors[0].Message) {
		t.Errorf("the message %q lacks the daemon's %q", e.Error(), e.Errors[0].Message)
	}
	// Reported once: the next flush succeeds.
	w.Scalar("good", 2, 2.5)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	run := d.inspect(t)["go/bad"]
	if run["good"].Count != 2 || run["fine"].Kind != "text" {
		t.Errorf("neighbours of the bad record: %v", run)
	}
	for tag := range run {
		if strings.HasPrefix(tag, "bad") {
			t.Errorf("rejected tag %q was written", tag)
		}
	}
}

func TestCloseReportsARejectedRecord(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/bad-close"})
	w.Scalar("", 1, 1)
	if e, ok := w.Close(ctx).(*Error); !ok || e.Code != codes.InvalidArgument {
		t.Fatalf("Close: %v, want INVALID_ARGUMENT", e)
	}
}

func TestOpenRunErrors(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	if _, err := Open(ctx, Options{Address: d.address, RunPath: "../outside"}); err == nil ||
		err.(*Error).Code != codes.InvalidArgument {
		t.Errorf("run path outside the logdir: %v", err)
	}
	if _, err := Open(ctx, Options{Address: d.address, HParams: map[string]interface{}{"x": []int{1}}}); err == nil {
		t.Error("an hparam of type []int was accepted")
	}
}

func TestExampleProgram(t *testing.T) {
	example := os.Getenv("TBLOG_GO_EXAMPLE")
	if example == "" {
		t.Skip("TBLOG_GO_EXAMPLE is not set (run_tests.sh builds it)")
	}
	d := startDaemon(t)
	// The address from TBLOG_ADDRESS, as a user points every client at once.
	cmd := exec.Command(example, "-run", "go/example", "-steps", "50")
	cmd.Env = append(os.Environ(), "TBLOG_ADDRESS="+d.address)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example: %v\n%s", err, out)
	}
	runs := d.inspect(t)
	if loss := runs["go/example"]["loss"]; loss.Count != 50 || loss.LastStep != 49 {
		t.Errorf("example loss: %+v", loss)
	}
	if w := runs["go/example"]["weights"]; w.Kind != "histogram" || w.Count != 5 {
		t.Errorf("example weights: %+v", w)
	}
	if acc := runs["go/example/validation"]["accuracy"]; acc.Count != 5 {
		t.Errorf("example accuracy: %+v", acc)
	}
	if img := runs["go/example"]["samples"]; img.Kind != "image" || img.Count != 5 {
		t.Errorf("example samples: %+v", img)
	}
}

func TestDefaultAddress(t *testing.T) {
	defer os.Setenv("TBLOG_ADDRESS", os.Getenv("TBLOG_ADDRESS"))
	os.Unsetenv("TBLOG_ADDRESS")
	if got := DefaultAddress(); got != "127.0.0.1:6066" {
		t.Errorf("DefaultAddress() = %q without TBLOG_ADDRESS", got)
	}
	os.Setenv("TBLOG_ADDRESS", "unix:/tmp/x.sock")
	if got := DefaultAddress(); got != "unix:/tmp/x.sock" {
		t.Errorf("DefaultAddress() = %q with TBLOG_ADDRESS", got)
	}
}

// No daemon at the address: Open fails within seconds, naming the address
// and how to point the client elsewhere (the first OpenRun is not retried).
func TestOpenWithoutADaemonFailsFastNamingTheAddress(t *testing.T) {
	address := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	start := time.Now()
	_, err := Open(testContext(t), Options{Address: address, RunPath: "x"})
	e, ok := err.(*Error)
	if !ok || e.Code != codes.Unavailable || !strings.Contains(e.Message, address) ||
		!strings.Contains(e.Message, "TBLOG_ADDRESS") {
		t.Fatalf("Open: %v, want Unavailable naming %s and TBLOG_ADDRESS", err, address)
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("Open took %v to fail", elapsed)
	}
}
