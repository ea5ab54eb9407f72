package tblog

// What the Go client puts on the wire, checked against an in-process fake
// TBLog server (no daemon needed): batch sequences, writer id, the scalar
// tag dictionary, little-endian tensor bytes, and error surfacing.

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tblogv1 "tblog/v1"
)

// fakeServer records every WriteRequest and rejects records whose tag starts
// with "bad" (INVALID_ARGUMENT), as tblogd's validation would. failures: the
// codes with which the next streams end at their first batch, unanswered;
// closeFailures: the answers to the next CloseRun calls.
type fakeServer struct {
	tblogv1.UnimplementedTBLogServer
	mu       sync.Mutex
	opens    []*tblogv1.OpenRunRequest
	binds    []*tblogv1.WriteRequest
	requests []*tblogv1.WriteRequest
	closed   []string
	failures []codes.Code
	written  uint64 // the last sequence acknowledged, reported by OpenRun
	// The codes of the next CloseRun calls.
	closeFailures []codes.Code
	// A failing stream has written its batch first (the answer is lost).
	writeBeforeFailing bool
	flushes            []*tblogv1.FlushRequest
}

func (f *fakeServer) Flush(_ context.Context, req *tblogv1.FlushRequest) (*tblogv1.FlushResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes = append(f.flushes, req)
	return &tblogv1.FlushResponse{}, nil
}

func (f *fakeServer) OpenRun(_ context.Context, req *tblogv1.OpenRunRequest) (*tblogv1.OpenRunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, req)
	return &tblogv1.OpenRunResponse{RunId: req.RunPath, RunPath: req.RunPath, Directory: "/logs/" + req.RunPath,
		WriterSequences: map[string]uint64{req.WriterId: f.written}}, nil
}

func (f *fakeServer) Write(stream tblogv1.TBLog_WriteServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		// The stream's bind-only first message: tblogd answers nothing to it.
		if len(req.Records) == 0 && req.Sequence == 0 && req.Flush == tblogv1.FlushMode_FLUSH_MODE_NONE {
			f.mu.Lock()
			f.binds = append(f.binds, req)
			f.mu.Unlock()
			continue
		}
		f.mu.Lock()
		if len(f.failures) > 0 {
			code := f.failures[0]
			f.failures = f.failures[1:]
			if f.writeBeforeFailing && req.Sequence > f.written {
				f.written = req.Sequence // written, its answer lost with the stream
			}
			f.mu.Unlock()
			return status.Errorf(code, "injected %s", code)
		}
		f.requests = append(f.requests, req)
		if req.Sequence > f.written {
			f.written = req.Sequence
		}
		f.mu.Unlock()
		response := &tblogv1.WriteResponse{WrittenSequence: req.Sequence}
		if req.Flush != tblogv1.FlushMode_FLUSH_MODE_NONE {
			response.FlushedSequence = req.Sequence
		}
		for i, record := range req.Records {
			if strings.HasPrefix(record.Tag, "bad") {
				response.Errors = append(response.Errors, &tblogv1.RecordError{Sequence: req.Sequence,
					Index: uint32(i), Tag: record.Tag, Code: int32(codes.InvalidArgument),
					Message: "tag " + record.Tag + " is not allowed here"})
			}
		}
		if err := stream.Send(response); err != nil {
			return err
		}
	}
}

func (f *fakeServer) CloseRun(_ context.Context, req *tblogv1.CloseRunRequest) (*tblogv1.CloseRunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = append(f.closed, req.RunId)
	if len(f.closeFailures) > 0 {
		code := f.closeFailures[0]
		f.closeFailures = f.closeFailures[1:]
		return nil, status.Errorf(code, "injected %s", code)
	}
	return &tblogv1.CloseRunResponse{}, nil
}

func startFake(t testing.TB) (*fakeServer, string) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeServer{}
	server := grpc.NewServer()
	tblogv1.RegisterTBLogServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	return fake, listener.Addr().String()
}

// openOnFake starts a fake server and opens a writer on it that sends only on
// Flush and Close (SendInterval -1), so each test knows what every batch holds.
func openOnFake(t *testing.T, ctx context.Context, runPath string) (*fakeServer, *Writer) {
	t.Helper()
	fake, address := startFake(t)
	w, err := Open(ctx, Options{Address: address, RunPath: runPath, SendInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return fake, w
}

func TestProtocolBatchesAndColumns(t *testing.T) {
	ctx := testContext(t)
	fake, w := openOnFake(t, ctx, "a")
	w.Scalar("loss", 1, 0.5)
	w.ScalarIn("validation", "acc", 1, 0.25)
	w.Scalar("loss", 2, 0.125)
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Histogram("h", 3, []float64{1.5, -2}, HistogramOptions{Buckets: 7})
	w.Text("notes", 3, "hi")
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if len(fake.requests) != 2 {
		t.Fatalf("%d batches, want 2", len(fake.requests))
	}
	first, second := fake.requests[0], fake.requests[1]
	// The bind-only first message names the run and writer; batches need not.
	if len(fake.binds) != 1 || fake.binds[0].RunId != "a" || fake.binds[0].WriterId != w.WriterID {
		t.Errorf("bind messages: %v", fake.binds)
	}
	if first.Sequence != 1 || first.Flush != tblogv1.FlushMode_FLUSH_MODE_FLUSH {
		t.Errorf("first batch header: seq %d flush %v", first.Sequence, first.Flush)
	}
	if second.Sequence != 2 || second.Flush != tblogv1.FlushMode_FLUSH_MODE_FLUSH {
		t.Errorf("second batch (Close's): seq %d flush %v", second.Sequence, second.Flush)
	}
	columns := first.Records[0].GetScalars()
	if columns == nil || len(columns.Tags) != 2 || columns.Tags[1].Subrun != "validation" ||
		len(columns.TagIndex) != 3 || columns.TagIndex[2] != 0 || columns.Steps[2] != 2 ||
		columns.Values[1] != 0.25 || len(columns.WallTimes) != 3 {
		t.Errorf("columns: %v", columns)
	}
	h := second.Records[0].GetHistogram()
	if h == nil || h.BucketCount != 7 || h.Values.Dtype != tblogv1.DType_DTYPE_FLOAT64 ||
		math.Float64frombits(binary.LittleEndian.Uint64(h.Values.Data[8:])) != -2 {
		t.Errorf("histogram: %v", h)
	}
	if second.Records[1].GetText().GetMarkdown() != "hi" {
		t.Errorf("text: %v", second.Records[1])
	}
	if len(fake.closed) != 1 || fake.closed[0] != "a" {
		t.Errorf("CloseRun calls: %v", fake.closed)
	}
}

func TestProtocolRecordErrorReportedOnce(t *testing.T) {
	ctx := testContext(t)
	_, w := openOnFake(t, ctx, "b")
	w.Scalar("ok", 0, 1)
	w.Text("bad/tag", 0, "x")
	e, ok := w.Flush(ctx).(*Error)
	if !ok || e.Code != codes.InvalidArgument || !strings.Contains(e.Error(), "tag bad/tag is not allowed here") {
		t.Fatalf("Flush: %v", e)
	}
	w.Text("fine", 1, "y")
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("second Flush: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// openFailing: a writer on a fake whose next streams end with `failures`.
func openFailing(t *testing.T, failures ...codes.Code) (*fakeServer, *Writer) {
	t.Helper()
	fake, address := startFake(t)
	fake.failures = failures
	w, err := Open(testContext(t), Options{Address: address, RunPath: "r", SendInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return fake, w
}

// Every transient code of tblog.proto's "Retries" ends the stream once:
// the writer reopens the run (RESUME, same writer id) and resends the batch,
// which arrives once.
func TestProtocolRetriesTheTransientCodes(t *testing.T) {
	transient := []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Aborted, codes.Canceled, codes.Unknown, codes.Internal, codes.FailedPrecondition}
	fake, w := openFailing(t, transient...)
	ctx := testContext(t)
	w.Scalar("x", 1, 1)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.opens) != 1+len(transient) {
		t.Fatalf("%d OpenRun calls, want %d", len(fake.opens), 1+len(transient))
	}
	for _, open := range fake.opens[1:] {
		if open.Mode != tblogv1.OpenMode_OPEN_MODE_RESUME || open.RunPath != "r" || open.WriterId != w.WriterID {
			t.Errorf("reopen: %v", open)
		}
	}
	if len(fake.requests) != 2 || fake.requests[0].Sequence != 1 || fake.requests[1].Sequence != 2 {
		t.Errorf("batches that arrived: %v", fake.requests)
	}
	if w.Stats().Reconnects != uint64(len(transient)) {
		t.Errorf("stats: %+v", w.Stats())
	}
}

// A final code ends the writer: Flush returns it, later calls too, and no
// reopen is tried.
func TestProtocolFinalCodeEndsTheWriter(t *testing.T) {
	for _, code := range []codes.Code{codes.OutOfRange, codes.PermissionDenied, codes.InvalidArgument,
		codes.Unauthenticated, codes.Unimplemented, codes.DataLoss} {
		fake, w := openFailing(t, code)
		ctx := testContext(t)
		w.Scalar("x", 1, 1)
		if e, ok := w.Flush(ctx).(*Error); !ok || e.Code != code || !strings.Contains(e.Message, "injected") {
			t.Errorf("%s: Flush returned %v", code, e)
		}
		if e, ok := w.Scalar("x", 2, 2).(*Error); !ok || e.Code != code {
			t.Errorf("%s: Scalar after the failure returned %v", code, e)
		}
		if e, ok := w.Close(ctx).(*Error); !ok || e.Code != code {
			t.Errorf("%s: Close returned %v", code, e)
		}
		fake.mu.Lock()
		if len(fake.opens) != 1 || len(fake.closed) != 0 {
			t.Errorf("%s: %d OpenRun, %d CloseRun calls, want 1 and 0", code, len(fake.opens), len(fake.closed))
		}
		fake.mu.Unlock()
	}
}

// NOT_FOUND ending the stream (the daemon restarted and does not know the
// run): reopened up to 3 times in a row, then final.
func TestProtocolRunNotFoundReopensThreeTimes(t *testing.T) {
	ctx := testContext(t)
	_, w := openFailing(t, codes.NotFound, codes.NotFound, codes.NotFound)
	w.Scalar("x", 1, 1)
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("3 NOT_FOUND: Flush %v", err)
	}
	w.Close(ctx)

	fake, w := openFailing(t, codes.NotFound, codes.NotFound, codes.NotFound, codes.NotFound)
	w.Scalar("x", 1, 1)
	if e, ok := w.Flush(ctx).(*Error); !ok || e.Code != codes.NotFound {
		t.Fatalf("4 NOT_FOUND: Flush %v, want NotFound", e)
	}
	fake.mu.Lock()
	if len(fake.opens) != 4 {
		t.Errorf("%d OpenRun calls, want 1 + 3 reopens", len(fake.opens))
	}
	fake.mu.Unlock()
	w.Close(ctx)
}

// CloseRun is retried on transient codes; NOT_FOUND (a restarted daemon
// that does not know the run) leaves no hold to release; a final code is
// returned.
func TestProtocolCloseRunRetries(t *testing.T) {
	for _, c := range []struct {
		failures []codes.Code
		calls    int
		want     codes.Code
	}{
		{[]codes.Code{codes.Unavailable, codes.Unavailable}, 3, codes.OK},
		{[]codes.Code{codes.Unavailable, codes.NotFound}, 2, codes.OK},
		{[]codes.Code{codes.PermissionDenied}, 1, codes.PermissionDenied},
	} {
		fake, w := openFailing(t)
		fake.mu.Lock()
		fake.closeFailures = c.failures
		fake.mu.Unlock()
		w.Scalar("x", 1, 1)
		err := w.Close(testContext(t))
		if got := status.Code(err); c.want == codes.OK && err != nil || c.want != codes.OK && (err == nil || err.(*Error).Code != c.want) {
			t.Errorf("CloseRun answers %v: Close returned %v (%v), want %v", c.failures, err, got, c.want)
		}
		fake.mu.Lock()
		if len(fake.closed) != c.calls {
			t.Errorf("CloseRun answers %v: %d calls, want %d", c.failures, len(fake.closed), c.calls)
		}
		fake.mu.Unlock()
	}
}

// Sync asks for FLUSH_MODE_SYNC. When the stream breaks after the daemon
// wrote the Sync's batch but before its answer, the reopen finds the batch
// held (writer_sequences) and completes the sync with a Flush(sync) call
// instead of resending.
func TestProtocolSyncAcrossAReconnect(t *testing.T) {
	ctx := testContext(t)
	fake, w := openFailing(t)
	w.Scalar("x", 1, 1)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	if len(fake.requests) != 1 || fake.requests[0].Flush != tblogv1.FlushMode_FLUSH_MODE_SYNC {
		t.Errorf("Sync's batch: %v", fake.requests)
	}
	fake.failures = []codes.Code{codes.Unavailable}
	fake.writeBeforeFailing = true
	fake.mu.Unlock()
	w.Scalar("x", 2, 2)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	if len(fake.flushes) != 1 || !fake.flushes[0].Sync || fake.flushes[0].ThroughSequence != 2 ||
		fake.flushes[0].WriterId != w.WriterID {
		t.Errorf("Flush calls after the reopen: %v", fake.flushes)
	}
	if len(fake.requests) != 1 {
		t.Errorf("batch 2 was resent: %v", fake.requests)
	}
	fake.mu.Unlock()
	w.Close(ctx)
}
