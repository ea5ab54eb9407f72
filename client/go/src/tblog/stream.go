package tblog

// The engine of a Writer: the buffer the logging goroutines append to, the
// sealed batches kept until the daemon acknowledges them, and the sender
// goroutine that owns the Write stream, reconnects after a transient failure
// and resends. One receiver goroutine per stream reads acknowledgements.
// Everything shared is guarded by mu; `changed` is closed and replaced (a
// broadcast) whenever a waiter may have something new to see.

import (
	"context"
	"fmt"
	mathrand "math/rand"
	"sync"
	"time"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tblogv1 "tblog/v1"
)

// isRetryable: the transient codes of tblog.proto's "Retries" comment (service
// TBLog), where each one's reason is given; the C++ client's IsRetryable and
// the Python client's _RETRYABLE are the same set. Keep them in step.
func isRetryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted,
		codes.Canceled, codes.Unknown, codes.Internal, codes.FailedPrecondition:
		return true
	}
	return false
}

// batch is one sealed WriteRequest, kept until released (see onResponse).
type batch struct {
	sequence uint64
	request  *tblogv1.WriteRequest
	bytes    int
	written  bool // the daemon has written it (counted in retained, not unwritten)
}

// columnKey names a tag of the open ScalarColumns record (no allocation per
// point, unlike a concatenated string).
type columnKey struct{ subrun, tag string }

type stream struct {
	w            *Writer
	style        tblogv1.ScalarStyle
	maxBuffer    int
	retain       int
	dropWhenFull bool

	mu sync.Mutex
	// The buffer: records in call order; the open ScalarColumns record is
	// the last of them while scalars follow one another.
	records  []*tblogv1.Record
	columns  *tblogv1.ScalarColumns
	tagIndex map[columnKey]uint32 // index in columns.Tags
	bufBytes int
	points   int
	// Sealed batches, by sequence; sent through sentThrough on this stream.
	sequence    uint64
	unacked     []*batch
	unwritten   int // bytes of sealed batches the daemon has not written
	retained    int // bytes of written batches kept until durable
	sentThrough uint64
	// What the daemon reported.
	written, durable, flushed uint64
	syncThrough               uint64 // the last batch sealed for Sync
	errors                    []*tblogv1.RecordError
	fatal                     *Error
	runNotFound               int
	stats                     Stats
	// Life cycle.
	closed   bool // Close was called: logging is refused
	stopping bool // the sender ends its stream and returns
	aborted  bool // stop at once (Close's ctx ended): the stream is cancelled
	changed  chan struct{}
	wake     chan struct{} // buffered(1): the sender has something to do
	abort    chan struct{} // closed when aborted
	stop     chan struct{} // closed when stopping
	done     chan struct{} // closed when the sender has returned
	// The connection and the live stream (generation gen).
	conn         *grpc.ClientConn
	call         tblogv1.TBLog_WriteClient
	cancelCall   context.CancelFunc
	gen          int
	broken       bool
	halfClosed   bool
	receiverDone chan struct{}
}

func (s *stream) init(w *Writer, opts Options) {
	s.w, s.style, s.dropWhenFull = w, opts.ScalarStyle, opts.DropWhenFull
	s.maxBuffer = opts.MaxBufferBytes
	if s.maxBuffer <= 0 {
		s.maxBuffer = 64 << 20
	}
	s.retain = opts.RetainBytes
	if s.retain <= 0 {
		s.retain = s.maxBuffer
	}
	s.changed = make(chan struct{})
	s.wake = make(chan struct{}, 1)
	s.abort = make(chan struct{})
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
}

// rebase continues the sequences after what the run holds of this writer.
func (s *stream) rebase(have uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sequence, s.sentThrough = have, have
	s.written, s.durable, s.flushed = have, have, have
}

func (s *stream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *stream) wakeSender() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// waitLocked waits (releasing mu) until done() holds, the writer failed for
// good or ctx ends (the error then). Called with mu held; returns with it.
func (s *stream) waitLocked(ctx context.Context, done func() bool) error {
	for !done() && s.fatal == nil {
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return ctx.Err()
		}
	}
	return nil
}

// usableLocked: nil when records may be added.
func (s *stream) usableLocked() error {
	if s.closed {
		return &Error{Code: codes.FailedPrecondition, Message: "tblog: the writer is closed"}
	}
	if s.fatal != nil {
		return s.fatal
	}
	return nil
}

// roomLocked waits until `bytes` more fit under maxBuffer, or refuses the
// record at once with DropWhenFull.
func (s *stream) roomLocked(bytes int) error {
	if bytes > s.maxBuffer {
		return &Error{Code: codes.ResourceExhausted, Message: fmt.Sprintf(
			"tblog: a record of %d bytes exceeds Options.MaxBufferBytes (%d)", bytes, s.maxBuffer)}
	}
	full := func() bool { return s.bufBytes+s.unwritten+bytes > s.maxBuffer }
	if !full() {
		return nil
	}
	if s.dropWhenFull {
		s.stats.Dropped++
		return &Error{Code: codes.ResourceExhausted, Message: fmt.Sprintf(
			"tblog: buffer full (Options.MaxBufferBytes %d; tblogd at %s slow or away): record dropped",
			s.maxBuffer, s.w.address)}
	}
	s.stats.BlockedCalls++
	s.sealLocked(tblogv1.FlushMode_FLUSH_MODE_NONE) // what waits must be on its way
	_ = s.waitLocked(context.Background(), func() bool { return !full() || s.closed })
	return s.usableLocked()
}

// addScalar appends one point to the open ScalarColumns record.
func (s *stream) addScalar(subrun, tag string, step int64, value float32, wallTime float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if err := s.roomLocked(pointBytes + len(tag) + len(subrun)); err != nil {
		return err
	}
	if s.columns == nil {
		s.columns = &tblogv1.ScalarColumns{Style: s.style}
		s.tagIndex = map[columnKey]uint32{}
		s.records = append(s.records, &tblogv1.Record{Kind: &tblogv1.Record_Scalars{Scalars: s.columns}})
	}
	key := columnKey{subrun, tag}
	index, ok := s.tagIndex[key]
	if !ok {
		index = uint32(len(s.columns.Tags))
		s.columns.Tags = append(s.columns.Tags, &tblogv1.ColumnTag{Tag: tag, Subrun: subrun})
		s.tagIndex[key] = index
		s.bufBytes += len(tag) + len(subrun) + 8
	}
	s.columns.TagIndex = append(s.columns.TagIndex, index)
	s.columns.Steps = append(s.columns.Steps, step)
	s.columns.Values = append(s.columns.Values, value)
	s.columns.WallTimes = append(s.columns.WallTimes, wallTime)
	s.bufBytes += pointBytes
	s.points++
	if s.points >= batchPoints {
		s.sealLocked(tblogv1.FlushMode_FLUSH_MODE_NONE)
	}
	return nil
}

// addRecord appends a non-scalar record (its wall time already set).
func (s *stream) addRecord(record *tblogv1.Record) error {
	bytes := proto.Size(record)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if err := s.roomLocked(bytes); err != nil {
		return err
	}
	if s.bufBytes > 0 && s.bufBytes+bytes > batchBytes {
		s.sealLocked(tblogv1.FlushMode_FLUSH_MODE_NONE) // a large record travels alone
	}
	s.columns = nil
	s.records = append(s.records, record)
	s.bufBytes += bytes
	if s.bufBytes >= batchBytes {
		s.sealLocked(tblogv1.FlushMode_FLUSH_MODE_NONE)
	}
	return nil
}

// sealLocked makes the buffer the next batch (an empty one only to carry a
// flush) and wakes the sender. Returns its sequence, 0 when nothing was sealed.
func (s *stream) sealLocked(flush tblogv1.FlushMode) uint64 {
	if len(s.records) == 0 && flush == tblogv1.FlushMode_FLUSH_MODE_NONE {
		return 0
	}
	s.sequence++
	b := &batch{sequence: s.sequence, bytes: s.bufBytes,
		request: &tblogv1.WriteRequest{Sequence: s.sequence, Records: s.records, Flush: flush}}
	s.unacked = append(s.unacked, b)
	s.unwritten += b.bytes
	s.records, s.columns, s.bufBytes, s.points = nil, nil, 0, 0
	s.wakeSender()
	return b.sequence
}

// takeErrorsLocked: the rejected records since the last report (once), else
// the final error.
func (s *stream) takeErrorsLocked() error {
	if len(s.errors) > 0 {
		errs := s.errors
		s.errors = nil
		first := errs[0]
		message := fmt.Sprintf("tblog: record %d (tag %q) of batch %d rejected (%s): %s",
			first.Index, first.Tag, first.Sequence, codes.Code(first.Code), first.Message)
		if len(errs) > 1 {
			message += fmt.Sprintf(" (and %d more rejected records)", len(errs)-1)
		}
		return &Error{Code: codes.Code(first.Code), Message: message, Errors: errs}
	}
	if s.fatal != nil {
		return s.fatal
	}
	return nil
}

// flush seals the buffer as a batch with `mode` and waits for the daemon's
// flushed_sequence to reach it (after the fsync, for SYNC).
func (s *stream) flush(ctx context.Context, mode tblogv1.FlushMode, closing bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && !closing {
		return &Error{Code: codes.FailedPrecondition, Message: "tblog: the writer is closed"}
	}
	if s.fatal == nil {
		sequence := s.sealLocked(mode)
		if mode == tblogv1.FlushMode_FLUSH_MODE_SYNC {
			s.syncThrough = sequence
		}
		if err := s.waitLocked(ctx, func() bool { return s.flushed >= sequence }); err != nil {
			return &Error{Code: codes.DeadlineExceeded, Message: fmt.Sprintf(
				"tblog: tblogd at %s has not acknowledged batch %d (%d batches waiting) before the "+
					"context ended: %v", s.w.address, sequence, len(s.unacked), err)}
		}
	}
	return s.takeErrorsLocked()
}

func (s *stream) close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyLocked() // logging calls waiting for room give up
	s.mu.Unlock()

	firstErr := s.flush(ctx, tblogv1.FlushMode_FLUSH_MODE_FLUSH, true)
	s.mu.Lock()
	fatal := s.fatal != nil
	flushed := s.flushed >= s.sequence
	s.stopping = true
	close(s.stop)
	if !flushed {
		s.abortLocked()
	}
	s.mu.Unlock()
	s.wakeSender()
	select {
	case <-s.done:
	case <-ctx.Done():
		s.mu.Lock()
		s.abortLocked()
		s.mu.Unlock()
		<-s.done
	}
	if !fatal && flushed {
		if err := s.closeRun(ctx); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	lost := 0 // written but not yet durable is not lost: the files hold it
	for _, b := range s.unacked {
		if !b.written {
			lost++
		}
	}
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if lost > 0 && firstErr == nil {
		firstErr = &Error{Code: codes.DeadlineExceeded, Message: fmt.Sprintf(
			"tblog: %d batches were not acknowledged by tblogd at %s before Close gave up",
			lost, s.w.address)}
	}
	return firstErr
}

// abortLocked makes the sender stop at once: it cancels the live stream too,
// so a sender blocked in Send (a daemon that stopped reading) returns.
func (s *stream) abortLocked() {
	if s.aborted {
		return
	}
	s.aborted = true
	close(s.abort)
	if s.cancelCall != nil {
		s.cancelCall()
	}
	if s.fatal == nil {
		// Flushes waiting in other goroutines end too.
		s.fatal = &Error{Code: codes.FailedPrecondition, Message: "tblog: the writer was closed before tblogd acknowledged everything"}
		s.notifyLocked()
	}
}

// closeRun releases this writer's hold. Releasing a hold that is gone is not
// an error for the daemon, so a transient failure is retried (on a fresh
// connection, as a reconnect) until ctx ends; a run the daemon does not know
// (NOT_FOUND) has no hold left to release.
func (s *stream) closeRun(ctx context.Context) error {
	w := s.w
	request := &tblogv1.CloseRunRequest{RunId: w.RunID, WriterId: w.WriterID}
	backoff := initialBackoff
	for {
		s.mu.Lock()
		conn := s.conn
		s.mu.Unlock()
		var err error
		if conn == nil {
			conn, err = w.dial()
			if err != nil {
				return err
			}
			s.mu.Lock()
			s.conn = conn
			s.mu.Unlock()
		}
		callCtx, cancel := context.WithTimeout(ctx, rpcTimeout)
		_, err = tblogv1.NewTBLogClient(conn).CloseRun(callCtx, request)
		cancel()
		if err == nil {
			return nil
		}
		if status.Code(err) == codes.NotFound {
			// The daemon restarted after acknowledging everything (Close's
			// flush) and does not know the run: the hold went with the old
			// process, and nothing is lost.
			return nil
		}
		if !isRetryable(status.Code(err)) || ctx.Err() != nil {
			return callError("CloseRun", err)
		}
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		conn.Close()
		if !sleepJittered(ctx.Done(), nil, &backoff) {
			return callError("CloseRun", err)
		}
	}
}

// sleepJittered sleeps a time in [backoff/2, backoff] and doubles backoff (up
// to maxBackoff). False when one of the channels closed first.
func sleepJittered(a, b <-chan struct{}, backoff *time.Duration) bool {
	wait := time.Duration(float64(*backoff) * (0.5 + 0.5*mathrand.Float64()))
	*backoff *= 2
	if *backoff > maxBackoff {
		*backoff = maxBackoff
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-a:
	case <-b:
	}
	return false
}
