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
        for request in request_iterator:
            run_id = request.run_id or run_id
            writer_id = request.writer_id or writer_id
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
                        self.runs[run_id].append(record)
                    self.sequences[key] = request.sequence
                written = self.sequences.get(key, 0)
                received += 1
                breaking = self.break_after is not None and received >= self.break_after
                if breaking:
                    self.break_after = None
            if breaking:
                context.abort(self.break_code, "fake: stream broken on purpose")
            yield pb.WriteResponse(written_sequence=written, durable_sequence=written,
                                   flushed_sequence=written if request.flush else 0,
                                   errors=errors)

    def Flush(self, request, context):
        return pb.FlushResponse()

    def CloseRun(self, request, context):
        with self.lock:
            self.closed.append(request.run_id)
        return pb.CloseRunResponse(run=pb.RunInfo(run_id=request.run_id))

    # ------------------------------------------------------------- helpers
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
