"""An in-process stand-in for tblogd's gRPC API, for the client's protocol
tests: it records every batch it receives, deduplicates by writer sequence
like the daemon, acknowledges, and can reject records, break streams with a
chosen status code, or refuse OpenRun on demand, to exercise the client's
resend path."""

import threading
from concurrent import futures

import grpc

from tblog.v1 import tblog_pb2 as pb
from tblog.v1 import tblog_pb2_grpc as pb_grpc


class FakeDaemon(pb_grpc.TBLogServicer):
    def __init__(self):
        self.lock = threading.Lock()
        self.runs = {}            # run_path -> list of Record (written, in order)
        self.sequences = {}       # (run_path, writer_id) -> last written sequence
        self.batches = []         # every WriteRequest received (duplicates too)
        self.closed = []
        self.reject_tag = None    # records with this tag get a RecordError
        self.break_after = None   # abort the stream after this many batches
        self.break_code = grpc.StatusCode.UNAVAILABLE  # ... with this status
        self.refuse_opens = 0     # answer this many OpenRun calls with open_refusal
        self.open_refusal = grpc.StatusCode.UNAVAILABLE
        self.opens = []           # every OpenRunRequest that was answered OK
        self.close_refusals = []  # status codes for the next CloseRun calls, in order
        self.close_calls = 0      # CloseRun calls received, refused ones too
        self.ack_gate = None      # a threading.Event: acks wait until it is set
        self.server = None
        self.port = None

    # ------------------------------------------------------------ lifecycle
    def start(self, port=0):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_receive_message_length", 64 << 20)])
        pb_grpc.add_TBLogServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.server.stop(grace=None)

    # ---------------------------------------------------------------- RPCs
    def OpenRun(self, request, context):
        path = request.run_path or f"{request.experiment}/run-{len(self.runs) + 1}"
        with self.lock:
            refused = self.refuse_opens > 0
            if refused:
                self.refuse_opens -= 1
        if refused:
            context.abort(self.open_refusal, "fake: OpenRun refused on purpose")
        with self.lock:
            self.opens.append(request)
            resumed = path in self.runs
            if request.mode == pb.OPEN_MODE_RESUME and not resumed:
                context.abort(grpc.StatusCode.NOT_FOUND, f"run {path} not found")
            self.runs.setdefault(path, [])
            sequences = {w: s for (p, w), s in self.sequences.items() if p == path}
        return pb.OpenRunResponse(run_id=path, run_path=path, directory="/fake/logs/" + path,
                                  resumed=resumed, writer_sequences=sequences)

    def Write(self, request_iterator, context):
        run_id = writer_id = None
        received = 0
        dictionary = {}  # the stream's tag dictionary: id -> ColumnTag
        for request in request_iterator:
            run_id = request.run_id or run_id
            writer_id = request.writer_id or writer_id
            for i, definition in enumerate(request.stream_tags):
                tag_id = request.stream_tags_first_id + i
                if dictionary.setdefault(tag_id, definition) != definition:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"fake: id {tag_id} redefined")
            if not request.records and not request.sequence and not request.flush:
                continue  # the stream's bind-only first message: tblogd answers nothing
            with self.lock:
                self.batches.append(request)
                key = (run_id, writer_id)
                errors = []
                if request.sequence > self.sequences.get(key, 0):
                    for index, record in enumerate(request.records):
                        if self.reject_tag is not None and record.tag == self.reject_tag:
                            errors.append(pb.RecordError(
                                sequence=request.sequence, index=index, tag=record.tag, code=3,
                                message=f"tag {record.tag!r} is refused by the fake"))
                            continue
                        self.runs[run_id].append(_local_tags(record, dictionary, context))
                    self.sequences[key] = request.sequence
                written = self.sequences.get(key, 0)
                received += 1
                breaking = self.break_after is not None and received >= self.break_after
                if breaking:
                    self.break_after = None
            if breaking:
                context.abort(self.break_code, "fake: stream broken on purpose")
            if self.ack_gate is not None:
                self.ack_gate.wait()
            yield pb.WriteResponse(written_sequence=written, durable_sequence=written,
                                   flushed_sequence=written if request.flush else 0,
                                   errors=errors)

    def Flush(self, request, context):
        return pb.FlushResponse()

    def CloseRun(self, request, context):
        with self.lock:
            self.close_calls += 1
            refusal = self.close_refusals.pop(0) if self.close_refusals else None
        if refusal is not None:
            context.abort(refusal, "fake: CloseRun refused on purpose")
        with self.lock:
            self.closed.append(request.run_id)
        return pb.CloseRunResponse(run=pb.RunInfo(run_id=request.run_id))

    # ------------------------------------------------------------- helpers
    @staticmethod
    def stream_tag_records():
        """How many scalar columns records referred to a stream dictionary."""
        return _STREAM_TAG_RECORDS[0]

    def scalars(self, run_path):
        """(subrun, tag, step, value) for every scalar point of a run."""
        out = []
        with self.lock:
            for record in self.runs.get(run_path, []):
                if record.WhichOneof("kind") == "scalars":
                    c = record.scalars
                    for i, step, value in zip(c.tag_index, c.steps, c.values):
                        out.append((c.tags[i].subrun, c.tags[i].tag, step, value))
                elif record.WhichOneof("kind") == "scalar":
                    out.append((record.subrun, record.tag, record.step, record.scalar.value))
        return out


_STREAM_TAG_RECORDS = [0]


def _local_tags(record, dictionary, context):
    """`record` with scalar columns that refer to the stream dictionary turned
    into the batch-local form (aborting the stream on an undefined id, as
    tblogd rejects the record), so the helpers read one form."""
    if record.WhichOneof("kind") != "scalars" or not record.scalars.stream_tag_ids:
        return record
    _STREAM_TAG_RECORDS[0] += 1
    out = pb.Record()
    out.CopyFrom(record)
    columns = out.scalars
    columns.stream_tag_ids = False
    local = {}
    for tag_id in record.scalars.tag_index:
        if tag_id not in dictionary:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"fake: stream tag id {tag_id} undefined")
        if tag_id not in local:
            local[tag_id] = len(local)
            columns.tags.append(dictionary[tag_id])
    columns.tag_index[:] = [local[t] for t in record.scalars.tag_index]
    return out
