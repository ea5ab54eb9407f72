package tblog

// Reconnect and resend against the real tblogd: a daemon killed (-9) or
// stopped mid-stream and started again on the same logdir and socket; every
// step must be read back from the event files exactly once, in order.

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// logThroughRestart logs `total` scalar points (value = step) and a histogram
// every 500 steps, stopping the daemon with sig at a third and starting it at
// half, then closes the writer and checks the run read back.
func logThroughRestart(t *testing.T, sig os.Signal, run string) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: run})
	const total = 6000
	for step := int64(0); step < total; step++ {
		if err := w.Scalar("x", step, float32(step)); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if step%500 == 0 {
			if err := w.Histogram("h", step, []float64{float64(step), 1, 2}, HistogramOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		switch step {
		case total / 3:
			time.Sleep(300 * time.Millisecond) // some batches written, some durable
			d.stop(t, sig)
		case total / 2:
			d.start(t)
		}
		if step%100 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if stats := w.Stats(); stats.Reconnects == 0 {
		t.Errorf("no reconnect counted: %+v", stats)
	}
	values := readValues(t, filepath.Join(d.logdir, run))
	checkEveryStep(t, values, "x", total)
	for _, v := range values {
		if v.tag == "x" && v.scalar != float64(v.step) {
			t.Fatalf("x at step %d holds %v", v.step, v.scalar)
		}
	}
	var histograms []int64
	for step := int64(0); step < total; step += 500 {
		histograms = append(histograms, step)
	}
	if got := stepsOf(values, "h"); !reflect.DeepEqual(got, histograms) {
		t.Errorf("h steps %v, want %v", got, histograms)
	}
	files, _ := filepath.Glob(filepath.Join(d.logdir, run, "events.out.tfevents.*"))
	if len(files) < 2 {
		t.Errorf("%d event files: the run was not resumed in a new file", len(files))
	}
}

func TestRestartKill9LosesAndDoublesNothing(t *testing.T) {
	logThroughRestart(t, syscall.SIGKILL, "go/kill9")
}

func TestRestartCleanShutdownLosesAndDoublesNothing(t *testing.T) {
	logThroughRestart(t, os.Interrupt, "go/sigterm")
}

// killedAfterAPoint: a writer of run that has logged and flushed step 0 of
// "x", and its daemon then killed (-9).
func killedAfterAPoint(t *testing.T, run string) (*daemon, context.Context, *Writer) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: run})
	w.Scalar("x", 0, 0)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d.stop(t, syscall.SIGKILL)
	return d, ctx, w
}

// Flush while the daemon is down returns DeadlineExceeded when its context
// ends, and the writer keeps retrying: once the daemon is back, Close
// delivers everything.
func TestFlushWhileTheDaemonIsDown(t *testing.T) {
	d, ctx, w := killedAfterAPoint(t, "go/down")
	w.Scalar("x", 1, 1)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if e, ok := w.Flush(short).(*Error); !ok || e.Code != codes.DeadlineExceeded {
		t.Fatalf("Flush with the daemon down: %v, want DeadlineExceeded", e)
	}
	w.Scalar("x", 2, 2)
	d.start(t)
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close after the restart: %v", err)
	}
	if got := stepsOf(readValues(t, filepath.Join(d.logdir, "go/down")), "x"); !reflect.DeepEqual(got, []int64{0, 1, 2}) {
		t.Errorf("x steps %v, want [0 1 2]", got)
	}
}

// Close gives up when its context ends with the daemon gone, saying what was
// lost, and does not hang.
func TestCloseGivesUpWhenTheDaemonStaysAway(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/gone"})
	d.stop(t, syscall.SIGKILL)
	w.Scalar("x", 1, 1)
	flushed := make(chan error)
	go func() { flushed <- w.Flush(context.Background()) }() // no deadline of its own
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if e, ok := w.Close(short).(*Error); !ok || e.Code != codes.DeadlineExceeded {
		t.Fatalf("Close with the daemon gone: %v, want DeadlineExceeded", e)
	}
	if e, ok := (<-flushed).(*Error); !ok || e.Code != codes.FailedPrecondition {
		t.Errorf("a Flush waiting when Close gave up: %v, want FailedPrecondition", e)
	}
	if err := w.Scalar("x", 2, 2); err == nil {
		t.Error("Scalar after Close succeeded")
	}
}

// A restarted program with a fixed writer id continues after the sequences
// the run holds of it (OpenRunResponse.writer_sequences) instead of being
// refused (OUT_OF_RANGE) from sequence 1.
func TestFixedWriterIDRebases(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	for session := int64(0); session < 3; session++ {
		w, err := Open(ctx, Options{Address: d.address, RunPath: "go/fixed", WriterID: "trainer-0"})
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < 5; i++ {
			w.Scalar("x", session*5+i, float32(i))
			if err := w.Flush(ctx); err != nil {
				t.Fatalf("session %d: %v", session, err)
			}
		}
		if err := w.Close(ctx); err != nil {
			t.Fatalf("session %d: Close: %v", session, err)
		}
	}
	if got := stepsOf(readValues(t, filepath.Join(d.logdir, "go/fixed")), "x"); len(got) != 15 || got[14] != 14 {
		t.Errorf("x steps %v, want 0..14", got)
	}
}

// Kills (-9) the daemon three times while a goroutine logs without pause,
// with large histograms among the scalars. Before each kill the daemon is
// frozen (SIGSTOP) for a moment, so that batches are in flight (sent, not
// acknowledged) when it dies: what the restarted daemon lacks is resent,
// what it has is not.
func TestRepeatedKillsWithBatchesInFlight(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/kills"})
	const total = 30000
	big := make([]float64, 1<<18) // 2 MiB of values: a batch of its own
	logged := make(chan error, 1)
	go func() {
		for step := int64(0); step < total; step++ {
			if err := w.Scalar("x", step, float32(step)); err != nil {
				logged <- err
				return
			}
			if step%2000 == 0 {
				big[0] = float64(step)
				if err := w.Histogram("big", step, big, HistogramOptions{}); err != nil {
					logged <- err
					return
				}
			}
			if step%300 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		logged <- nil
	}()
	for kill := 0; kill < 3; kill++ {
		time.Sleep(150 * time.Millisecond)
		d.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(300 * time.Millisecond)
		d.stop(t, syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
		d.start(t)
	}
	if err := <-logged; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stats := w.Stats()
	t.Logf("stats: %+v", stats)
	// (A kill during a reconnect's backoff makes two breaks one reconnect.)
	if stats.Reconnects == 0 || stats.ResentBatches == 0 {
		t.Errorf("reconnects with batches resent expected: %+v", stats)
	}
	values := readValues(t, filepath.Join(d.logdir, "go/kills"))
	checkEveryStep(t, values, "x", total)
	var bigSteps []int64
	for step := int64(0); step < total; step += 2000 {
		bigSteps = append(bigSteps, step)
	}
	if got := stepsOf(values, "big"); !reflect.DeepEqual(got, bigSteps) {
		t.Errorf("big steps %v, want %v", got, bigSteps)
	}
}

// The daemon is killed before Close: Close's flush reconnects once the daemon
// is back, and its CloseRun goes to the restarted daemon.
func TestCloseAcrossARestart(t *testing.T) {
	d, ctx, w := killedAfterAPoint(t, "go/close-restart")
	closed := make(chan error)
	go func() { closed <- w.Close(ctx) }()
	time.Sleep(300 * time.Millisecond)
	d.start(t)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := stepsOf(readValues(t, filepath.Join(d.logdir, "go/close-restart")), "x"); !reflect.DeepEqual(got, []int64{0}) {
		t.Errorf("x steps %v, want [0]", got)
	}
}

// With the daemon away, the buffer bound holds: DropWhenFull refuses records
// once MaxBufferBytes is reached (counted), and the writer delivers what it
// kept when the daemon is back.
func TestBufferBoundWhileTheDaemonIsAway(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/bound", MaxBufferBytes: 64 << 10, DropWhenFull: true})
	d.stop(t, syscall.SIGKILL)
	kept := int64(0)
	for step := int64(0); step < 10000; step++ {
		err := w.Scalar("x", step, 1)
		if err == nil {
			kept = step + 1
			continue
		}
		if e, ok := err.(*Error); !ok || e.Code != codes.ResourceExhausted {
			t.Fatalf("step %d: %v, want ResourceExhausted", step, err)
		}
		break
	}
	if kept == 0 || kept*pointBytes > 64<<10 || w.Stats().Dropped != 1 {
		t.Fatalf("%d points kept under a 64 KiB bound, stats %+v", kept, w.Stats())
	}
	d.start(t)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stepsOf(readValues(t, filepath.Join(d.logdir, "go/bound")), "x"); int64(len(got)) != kept {
		t.Errorf("%d points read back, %d kept", len(got), kept)
	}
}

// By default a full buffer makes the logging call wait (nothing is lost):
// it goes on once the daemon is back.
func TestFullBufferWaitsForTheDaemon(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/wait", MaxBufferBytes: 64 << 10})
	d.stop(t, syscall.SIGKILL)
	const total = 10000
	logged := make(chan error, 1)
	go func() {
		for step := int64(0); step < total; step++ {
			if err := w.Scalar("x", step, float32(step)); err != nil {
				logged <- err
				return
			}
		}
		logged <- nil
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-logged:
		t.Fatalf("%d points logged with the daemon away and a 64 KiB bound: %v", total, err)
	default:
	}
	if w.Stats().BlockedCalls == 0 {
		t.Errorf("no blocked call counted: %+v", w.Stats())
	}
	d.start(t)
	if err := <-logged; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkEveryStep(t, readValues(t, filepath.Join(d.logdir, "go/wait")), "x", total)
}

// A daemon that stops reading (SIGSTOP) while megabytes are in flight: Close
// returns when its context ends, even with the sender blocked in Send.
func TestCloseDoesNotHangOnAFrozenDaemon(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	w := openWriter(t, ctx, d, Options{RunPath: "go/frozen", MaxBufferBytes: 256 << 20})
	d.cmd.Process.Signal(syscall.SIGSTOP)
	defer d.stop(t, syscall.SIGKILL)
	values := make([]float64, 1<<20) // 8 MiB per record
	for step := int64(0); step < 12; step++ {
		if err := w.Histogram("h", step, values, HistogramOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	if e, ok := w.Close(short).(*Error); !ok || e.Code != codes.DeadlineExceeded {
		t.Errorf("Close: %v, want DeadlineExceeded", e)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("Close took %v with a 1 s context", elapsed)
	}
}

// Four goroutines log through one Writer and a second Writer shares the run,
// across a kill -9: every tag's steps are read back once, in order.
func TestConcurrentLoggersAndWritersAcrossAKill(t *testing.T) {
	d := startDaemon(t)
	ctx := testContext(t)
	var writers []*Writer
	for i := 0; i < 2; i++ {
		w, err := Open(ctx, Options{Address: d.address, RunPath: "go/shared"})
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	const total = 5000
	tags := []string{"a", "b", "c", "d", "e"}
	logged := make(chan error, len(tags))
	for i, tag := range tags {
		w := writers[0]
		if i == len(tags)-1 {
			w = writers[1]
		}
		go func(w *Writer, tag string) {
			for step := int64(0); step < total; step++ {
				if err := w.Scalar(tag, step, float32(step)); err != nil {
					logged <- err
					return
				}
				if step%500 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			logged <- nil
		}(w, tag)
	}
	time.Sleep(100 * time.Millisecond)
	d.stop(t, syscall.SIGKILL)
	d.start(t)
	for range tags {
		if err := <-logged; err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range writers {
		if err := w.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	values := readValues(t, filepath.Join(d.logdir, "go/shared"))
	for _, tag := range tags {
		checkEveryStep(t, values, tag, total)
	}
}
