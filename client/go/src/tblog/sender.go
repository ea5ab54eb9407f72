package tblog

// The sender goroutine (sends sealed batches in order on the live Write
// stream, reconnects when it broke), the receiver goroutine of each stream
// (acknowledgements; how the stream ended), and the reconnect itself.

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tblogv1 "tblog/v1"
)

// startStream opens a Write stream on conn (which the stream now owns),
// binds it to the run and resends every batch after sentThrough.
func (s *stream) startStream(conn *grpc.ClientConn) {
	ctx, cancel := context.WithCancel(context.Background())
	call, err := tblogv1.NewTBLogClient(conn).Write(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn, s.cancelCall = conn, cancel
	s.gen++
	s.halfClosed = false
	s.receiverDone = make(chan struct{})
	if err != nil {
		// Only a cancelled context makes grpc-go fail here: treat as broken.
		s.call, s.broken = nil, true
		close(s.receiverDone)
		return
	}
	s.call, s.broken = call, false
	// Binds the stream at once, so this writer holds the run while it has
	// nothing to log yet (tblog.proto, WriteRequest and "Leases"). A failure
	// shows as the stream's status, which the receiver reads.
	_ = call.Send(&tblogv1.WriteRequest{RunId: s.w.RunID, WriterId: s.w.WriterID})
	go s.receive(call, s.gen, s.receiverDone)
}

// receive reads acknowledgements until the stream ends, then records how it
// ended. A stream replaced since (gen) no longer speaks for the writer.
func (s *stream) receive(call tblogv1.TBLog_WriteClient, gen int, done chan struct{}) {
	defer close(done)
	for {
		response, err := call.Recv()
		s.mu.Lock()
		current := gen == s.gen
		if current && err == nil {
			s.onResponseLocked(response)
		} else if current {
			s.streamEndedLocked(err)
		}
		s.mu.Unlock()
		if err != nil || !current {
			return
		}
	}
}

// streamEndedLocked: after a transient code the stream is broken (the sender
// reconnects); after a final one the writer has failed for good.
func (s *stream) streamEndedLocked(err error) {
	defer s.wakeSender()
	defer s.notifyLocked()
	if err == io.EOF && s.halfClosed {
		return // the end of a stream we ended
	}
	code := status.Code(err)
	if err == io.EOF {
		code = codes.Unavailable // the daemon ended it with OK before we did
	}
	if s.aborted && code == codes.Canceled {
		return
	}
	switch {
	case code == codes.NotFound && s.runNotFound < maxRunNotFoundInARow:
		// The daemon does not know the run: it restarted after our
		// OpenRun. The reconnect reopens it (RESUME) and resends.
		s.runNotFound++
		s.broken = true
	case code == codes.NotFound || !isRetryable(code):
		if s.fatal == nil {
			s.fatal = callError("Write stream", err)
		}
	default:
		s.broken = true
	}
}

func (s *stream) onResponseLocked(response *tblogv1.WriteResponse) {
	if response.WrittenSequence > s.written {
		s.written = response.WrittenSequence
		s.runNotFound = 0 // progress: the run is known again
	}
	if response.DurableSequence > s.durable {
		s.durable = response.DurableSequence
	}
	if response.FlushedSequence > s.flushed {
		s.flushed = response.FlushedSequence
	}
	s.errors = append(s.errors, response.Errors...)
	s.stats.Duplicates += uint64(len(response.DuplicateSequences))
	s.releaseLocked()
	s.notifyLocked()
}

// releaseLocked moves written batches out of the unwritten count and forgets
// those the daemon reports durable, and written ones past the retain bound.
func (s *stream) releaseLocked() {
	for _, b := range s.unacked {
		if b.sequence > s.written {
			break
		}
		if !b.written {
			b.written = true
			s.unwritten -= b.bytes
			s.retained += b.bytes
		}
	}
	n := 0
	for _, b := range s.unacked {
		if b.sequence > s.durable && !(b.written && s.retained > s.retain) {
			break
		}
		if b.written {
			s.retained -= b.bytes
		} else {
			s.unwritten -= b.bytes
		}
		n++
	}
	for i := 0; i < n; i++ {
		s.unacked[i] = nil // the request's memory goes now
	}
	s.unacked = s.unacked[n:]
}

// sender: seals the buffer every interval, sends sealed batches in order,
// reconnects after a break; ends the stream and returns when stopping.
func (s *stream) sender(interval time.Duration) {
	defer close(s.done)
	var tick <-chan time.Time
	if interval > 0 {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	for {
		select {
		case <-s.wake:
		case <-tick:
			s.mu.Lock()
			s.sealLocked(tblogv1.FlushMode_FLUSH_MODE_NONE)
			s.mu.Unlock()
		case <-s.abort:
		}
		for {
			s.mu.Lock()
			if s.aborted || s.fatal != nil {
				s.mu.Unlock()
				s.endStream(false)
				return
			}
			if s.broken {
				stopping := s.stopping
				s.mu.Unlock()
				if stopping || !s.reconnect() {
					s.endStream(false)
					return
				}
				continue
			}
			var pending []*tblogv1.WriteRequest
			for _, b := range s.unacked {
				if b.sequence > s.sentThrough {
					pending = append(pending, b.request)
				}
			}
			if len(pending) > 0 {
				s.sentThrough = pending[len(pending)-1].Sequence
			}
			call, done, stopping := s.call, s.receiverDone, s.stopping
			s.mu.Unlock()
			for _, request := range pending {
				if err := call.Send(request); err != nil {
					// io.EOF: the stream is over; the receiver reads why.
					s.waitReceiver(done)
					break
				}
			}
			if len(pending) == 0 {
				if stopping {
					s.endStream(true)
					return
				}
				break
			}
		}
	}
}

// waitReceiver waits for the stream's receiver to record how it ended.
func (s *stream) waitReceiver(done chan struct{}) {
	select {
	case <-done:
	case <-s.abort:
	}
	s.mu.Lock()
	if s.fatal == nil {
		s.broken = true
	}
	s.mu.Unlock()
}

// endStream half-closes the live stream and gives the daemon a moment to end
// it (graceful), or cancels it.
func (s *stream) endStream(graceful bool) {
	s.mu.Lock()
	call, cancel, done := s.call, s.cancelCall, s.receiverDone
	s.halfClosed = true
	s.mu.Unlock()
	if call == nil {
		return
	}
	if graceful && call.CloseSend() == nil {
		select {
		case <-done:
		case <-s.abort:
		case <-time.After(5 * time.Second):
		}
	}
	cancel()
	<-done
}

// reconnect: OpenRun RESUME with backoff on fresh connections until the
// daemon answers, then a new stream that resends what it lacks. False when
// the writer failed for good, is aborted or is stopping.
func (s *stream) reconnect() bool {
	w := s.w
	s.mu.Lock()
	old, cancel, done := s.conn, s.cancelCall, s.receiverDone
	s.conn, s.call = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel() // the daemon sees the old stream end: it frees the writer id
		<-done
	}
	if old != nil {
		old.Close()
	}
	backoff := initialBackoff
	request := &tblogv1.OpenRunRequest{RunPath: w.RunPath, Mode: tblogv1.OpenMode_OPEN_MODE_RESUME,
		Labels: w.labels, WriterId: w.WriterID}
	for {
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			// Close has everything written already (its flush): nothing to
			// resend; CloseRun dials on its own.
			return false
		}
		// A fresh connection per attempt: one that saw the daemon go away
		// retries on gRPC's own backoff (1 s and growing), a new one at once.
		conn, err := w.dial()
		if err == nil {
			ctx, cancelOpen := context.WithTimeout(context.Background(), rpcTimeout)
			go func() { // Close's abort ends the attempt
				select {
				case <-s.abort:
					cancelOpen()
				case <-ctx.Done():
				}
			}()
			var opened *tblogv1.OpenRunResponse
			opened, err = tblogv1.NewTBLogClient(conn).OpenRun(ctx, request)
			cancelOpen()
			if err == nil {
				err = s.resumeAfter(conn, opened.RunId, opened.WriterSequences[w.WriterID])
			}
			if err == nil {
				s.startStream(conn)
				return true
			}
			conn.Close()
			if code := status.Code(err); !isRetryable(code) {
				s.mu.Lock()
				if s.fatal == nil {
					s.fatal = callError(fmt.Sprintf("reopening (OpenRun RESUME, Flush) %q at %s", w.RunPath, w.address), err)
				}
				s.notifyLocked()
				s.mu.Unlock()
				return false
			}
		}
		if !sleepJittered(s.abort, s.stop, &backoff) {
			return false
		}
	}
}

// resumeAfter drops the batches the daemon already holds (have: its
// writer_sequences for this writer) and rewinds the send position so the
// next stream resends the others, in order. A Sync whose batch the daemon
// holds but perhaps never synced (its answer was lost with the old stream)
// is completed with a sync Flush call through `have` first.
func (s *stream) resumeAfter(conn *grpc.ClientConn, runID string, have uint64) error {
	s.mu.Lock()
	needSync := s.syncThrough > s.flushed && s.syncThrough <= have
	s.mu.Unlock()
	if needSync {
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		_, err := tblogv1.NewTBLogClient(conn).Flush(ctx, &tblogv1.FlushRequest{
			RunId: runID, WriterId: s.w.WriterID, ThroughSequence: have, Sync: true})
		cancel()
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Reconnects++
	// What the daemon holds is written, flushed to the OS (visible) and,
	// being in the files it scanned, not to be resent.
	if have > s.written {
		s.written = have
	}
	if have > s.flushed {
		s.flushed = have
	}
	if have > s.durable {
		s.durable = have
	}
	s.releaseLocked()
	// Batches written by the old daemon but not durable, and missing from
	// the files now (lost with a machine): sent again as unwritten.
	for _, b := range s.unacked {
		if b.written {
			b.written = false
			s.retained -= b.bytes
			s.unwritten += b.bytes
		}
	}
	for _, b := range s.unacked {
		if b.sequence <= s.sentThrough {
			s.stats.ResentBatches++
		}
	}
	s.sentThrough = s.sequence
	if len(s.unacked) > 0 {
		s.sentThrough = s.unacked[0].sequence - 1
	}
	s.notifyLocked()
	return nil
}
