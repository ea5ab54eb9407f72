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

	tblogv1 "tblog/v1"
)

// fakeServer records every WriteRequest and rejects records whose tag starts
// with "bad" (INVALID_ARGUMENT), as tblogd's validation would.
type fakeServer struct {
	tblogv1.UnimplementedTBLogServer
	mu       sync.Mutex
	binds    []*tblogv1.WriteRequest
	requests []*tblogv1.WriteRequest
	closed   []string
}

func (f *fakeServer) OpenRun(_ context.Context, req *tblogv1.OpenRunRequest) (*tblogv1.OpenRunResponse, error) {
	return &tblogv1.OpenRunResponse{RunId: req.RunPath, RunPath: req.RunPath, Directory: "/logs/" + req.RunPath}, nil
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
		f.requests = append(f.requests, req)
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
	f.closed = append(f.closed, req.RunId)
	f.mu.Unlock()
	return &tblogv1.CloseRunResponse{}, nil
}

func startFake(t *testing.T) (*fakeServer, string) {
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
