// tblog::client: the C++ client of tblogd. A Writer streams records to the
// daemon, which writes TensorBoard event files.
//
//   auto writer = tblog::Writer::Open({.experiment = "mnist"});
//   if (!writer.ok()) return writer.status();
//   for (int64_t step = 0; step < n; ++step) (*writer)->scalar("loss", step, loss);
//   (*writer)->close();
//
// A record call only appends to a bounded in-process buffer (scalars into
// columns, about 0.1 us each); a background thread batches the buffer onto one
// gRPC stream, keeps every batch until the daemon acknowledges it, and after a
// broken stream or a daemon restart reconnects and resends what was not
// acknowledged. The daemon drops batches it already wrote, so each record is
// written exactly once, in the order of the calls.
//
// Every Writer method is thread-safe: several threads may log through one
// Writer; records of one thread keep their order.
#ifndef TBLOG_CLIENT_H_
#define TBLOG_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tblog/connection.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog {

// What a record call does when the buffer (queued + unacknowledged bytes) is
// full, which happens when the daemon is slower than the trainer or gone.
enum class OverflowPolicy {
  // The call waits until the daemon acknowledges enough to make room: no
  // record is lost, but training stalls while the daemon is unreachable.
  kBlock,
  // The call returns RESOURCE_EXHAUSTED at once and the record is dropped and
  // counted in WriterStats::dropped: training never waits, data may be lost.
  kDropNewest,
};

// When the Writer may forget a sent batch.
enum class AckLevel {
  // Once the daemon has written it to the OS (WriteResponse.written_sequence).
  // Survives stream breaks and daemon restarts after a clean shutdown; a
  // daemon crash (kill -9, machine loss) can lose what was not yet fsynced.
  kWritten,
  // Once it is fsynced and checkpointed (durable_sequence): survives a daemon
  // crash, at the price of holding up to one daemon sync interval of data in
  // the buffer (size max_buffer_bytes accordingly).
  kDurable,
};

// A hyperparameter value: a number, a string or a flag.
class HParamValue {
 public:
  template <typename T>
    requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
  HParamValue(T number) : value_(static_cast<double>(number)) {}  // NOLINT: implicit on purpose
  HParamValue(bool flag) : value_(flag) {}                        // NOLINT
  HParamValue(std::string text) : value_(std::move(text)) {}      // NOLINT
  HParamValue(const char* text) : value_(std::string(text)) {}    // NOLINT

  const std::variant<double, bool, std::string>& value() const { return value_; }
  v1::HParamValue ToProto() const;

 private:
  std::variant<double, bool, std::string> value_;
};

// A metric the hparams dashboard judges a run by: a scalar tag of the run, or
// of one of its sub-runs ("validation").
struct HParamMetric {
  HParamMetric(const char* metric_tag) : tag(metric_tag) {}  // NOLINT: implicit on purpose
  HParamMetric(std::string metric_tag, std::string metric_subrun = "")
      : tag(std::move(metric_tag)), subrun(std::move(metric_subrun)) {}
  std::string tag;
  std::string subrun;
};

// Hyperparameters of a run: {{"lr", 0.01}, {"optimizer", "adam"}} and the
// metrics they are judged by.
struct HParams {
  std::map<std::string, HParamValue> values;
  std::vector<HParamMetric> metrics;
  // PyTorch add_hparams' layout instead of TensorBoard's.
  bool torch_style = false;

  bool empty() const { return values.empty() && metrics.empty(); }
  v1::HParams ToProto() const;
};

// The daemon address: $TBLOG_ADDRESS when set, else "127.0.0.1:6066".
std::string DefaultTarget();
// $TBLOG_SHM_SOCKET, or "" (derived from the target; WriterOptions).
std::string DefaultShmSocket();

// $WORLD_SIZE when it is a positive integer (torchrun, DeepSpeed and
// Lightning set it on every rank), else 0: the default reduce group size.
uint32_t WorldSizeFromEnvironment();

struct WriterOptions {
  // gRPC target: "host:port", or "unix:/path/to.sock" (faster on one host).
  std::string target = DefaultTarget();
  // TLS and bearer token (tblog/connection.h); by default from TBLOG_TLS*,
  // TBLOG_TOKEN and TBLOG_TOKEN_FILE.
  ConnectionOptions connection = ConnectionOptions::FromEnvironment();
  // The run: <logdir>/<experiment>/<timestamp>[-<name>], or exactly
  // <logdir>/<run_path> when run_path is set (see tblog.proto, OpenRunRequest).
  std::string experiment;
  std::string name;
  std::string run_path;
  v1::OpenMode mode = v1::OPEN_MODE_DEFAULT;
  // Written as the run's hparams session when the run is first opened.
  HParams hparams;
  // Reported by the daemon's ListRuns (host, rank, job, ...).
  std::map<std::string, std::string> labels;
  // Identifies this writer across reconnects and daemon restarts, so resent
  // batches are recognised. "" = a random 128-bit hex id.
  std::string writer_id;
  // Shared memory with a daemon on this host (README "Shared memory"):
  // histogram values, image pixels and embedding matrices of 16 KiB and more
  // are copied into a ring of shm_ring_bytes that the daemon maps, instead of
  // travelling in the messages. Used when the daemon's --shm-socket is
  // reachable: shm_socket, else $TBLOG_SHM_SOCKET, else "<path>.shm" for a
  // "unix:<path>" target ("off" = never). Bytes in the messages whenever the
  // daemon is remote or refuses the ring, a tensor is larger than the ring,
  // or the ring stays full (of tensors not yet acknowledged) for 2 s;
  // under OverflowPolicy::kDropNewest a full ring
  // means bytes at once. 0 = off. The ring
  // is made and attached by the background thread, not by Open() nor the
  // calls, once the first large tensor (sent as bytes) asks for one: large
  // enough for two of that tensor (shm_ring_bytes doubled, as growth does,
  // up to shm_ring_max_bytes), or shm_ring_bytes if the daemon refuses that.
  std::string shm_socket = DefaultShmSocket();
  size_t shm_ring_bytes = size_t{64} << 20;
  // How large the ring may grow: a tensor that leaves no room in the ring
  // for a second one of its size doubles it, up to this and what the daemon
  // accepts (its rings share half of --max-inflight-bytes), so that large
  // tensors are copied in while the daemon converts the previous one. Only
  // addresses are reserved up front; memory is taken as the ring grows.
  size_t shm_ring_max_bytes = size_t{1} << 30;
  // How scalars are stored: TensorBoard 2's tensors, or PyTorch's simple_value.
  v1::ScalarStyle scalar_style = v1::SCALAR_STYLE_TENSOR;
  // Reductions across writers (ReduceOptions): how many writers contribute
  // to each reduced point of the run (0: not set; then every reduced record
  // names its own), and how long the daemon waits for a point's missing
  // contributors (0: the daemon's --reduce-timeout). See tblog.proto,
  // OpenRunRequest.reduce_group_size.
  uint32_t reduce_group_size = WorldSizeFromEnvironment();
  double reduce_timeout_seconds = 0;

  // Bound on queued + sent-but-unacknowledged bytes, and what a call does when
  // it is reached. A single record larger than the bound is refused.
  size_t max_buffer_bytes = size_t{64} << 20;
  OverflowPolicy overflow = OverflowPolicy::kBlock;
  // A record is sent at once when no batch is on its way to the daemon (sent
  // and not yet acknowledged as written), so a lone scalar reaches the files
  // within milliseconds. While one is, records gather into the next batch,
  // sent when the daemon acknowledges, when it holds max_batch_bytes, or
  // batch_delay after its first record, whichever comes first: a flood goes
  // out in large batches. larger/longer = fewer messages under load.
  size_t max_batch_bytes = size_t{1} << 20;
  absl::Duration batch_delay = absl::Milliseconds(50);
  // The largest record (encoded) a record call accepts; a larger one is
  // refused with INVALID_ARGUMENT when it is logged, since the daemon would
  // refuse every resend of it. The default fits the daemon's default
  // --max-message-size (64 MiB) less 1 MiB for the rest of its batch; a
  // daemon with a smaller one lowers it when the run is opened
  // (OpenRunResponse.max_message_bytes), and batches are cut below it too.
  // Raise it with the daemon's --max-message-size (e.g. 256 MiB - 1 MiB). A
  // larger tensor still goes through the shared-memory ring, where its
  // record carries only the slice's name: the call waits (up to 5 s) for the
  // ring to be made or grown to hold it.
  size_t max_record_bytes = (size_t{64} << 20) - (size_t{1} << 20);
  // Reconnect delays after a broken stream: doubling from initial to max.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // When a sent batch may be forgotten (see AckLevel): what a reconnect resends.
  AckLevel retain_until = AckLevel::kWritten;

  // false: Open() fails unless the daemon opens the run. true: Open() returns
  // at once and the run is opened when the daemon becomes reachable (a sidecar
  // that starts after the trainer); records are buffered meanwhile.
  bool open_in_background = false;
  // How long Open() (open_in_background false) keeps trying its first
  // OpenRun while the daemon is unreachable or does not answer in time
  // (UNAVAILABLE, DEADLINE_EXCEEDED: a daemon starting, or restarting after
  // a crash), each try on a fresh channel after the reconnect backoff
  // (initial_backoff doubling to max_backoff). Past it, Open() fails with the
  // last try's code (UNAVAILABLE when nothing listens) and a message naming
  // the target; the try under way when it passes may take up to rpc_timeout
  // more. Any other answer (INVALID_ARGUMENT, PERMISSION_DENIED,
  // UNAUTHENTICATED, RESOURCE_EXHAUSTED, ...) fails Open() at once.
  // 0 = one try.
  absl::Duration open_timeout = absl::Seconds(30);
  // Deadline of each unary RPC (OpenRun, Flush, CloseRun).
  absl::Duration rpc_timeout = absl::Seconds(10);
  // How long close() waits for unacknowledged batches before giving up.
  absl::Duration close_timeout = absl::Seconds(30);
  // close() releases this writer's hold on the run with CloseRun: the run
  // ends (hparams session end, files closed) when its last writer has
  // released it, so every writer of a shared run may keep this true. false:
  // the hold is left to expire after the daemon's --writer-lease, which
  // counts as a vanished writer (tblog.proto, CloseRunRequest.status).
  bool close_run = true;
};

// Per-call options: every record method takes them last.
struct RecordOptions {
  // Seconds since the epoch; 0 = the time of the call.
  double wall_time = 0;
  // A sub-run ("train", "validation"): a subdirectory of the run that
  // TensorBoard shows as a run of its own. "" = the run itself.
  std::string_view subrun;
};

// A record reduced across the run's writers (tblog.proto, "Reductions
// across writers"): every writer (rank) logs its own value of a tag and step,
// and the daemon writes one point, e.g. the mean of the ranks' losses.
struct ReduceOptions {
  // MEAN, SUM, MIN, MAX, COUNT (scalars) or MERGE (histograms with the
  // EXPONENTIAL layout). UNSPECIFIED: not reduced (histogram()'s default).
  v1::ReduceOp op = v1::REDUCE_OP_MEAN;
  double weight = 0;        // MEAN only: this writer's weight (batch size); 0 = 1
  uint32_t group_size = 0;  // writers expected; 0 = the run's (WriterOptions)
  // Also write this writer's own value, under "<tag>/by_writer/<writer_id>".
  bool keep_contributions = false;
};

struct HistogramOptions {
  v1::HistogramLayout layout = v1::HISTOGRAM_LAYOUT_UNIFORM;
  uint32_t bucket_count = 0;  // UNIFORM only; 0 = 30
  // {.op = v1::REDUCE_OP_MERGE} (with layout EXPONENTIAL): one histogram of
  // every writer's values. The default: this writer's histogram alone.
  ReduceOptions reduce{.op = v1::REDUCE_OP_UNSPECIFIED};
};

struct ImageOptions {
  v1::PixelLayout layout = v1::PIXEL_LAYOUT_HWC;
  v1::ImageStyle style = v1::IMAGE_STYLE_TENSOR;
  uint32_t max_outputs = 0;  // batches only; 0 = 3
};

struct TextOptions {
  bool torch_style = false;  // PyTorch add_text's layout: tag "<tag>/text_summary"
};

struct AudioOptions {
  bool torch_style = false;  // PyTorch add_audio's layout (Summary.Audio)
};

// Counters of one Writer, for monitoring and tests. Records count scalar
// points one by one.
struct WriterStats {
  uint64_t enqueued = 0;         // records accepted into the buffer
  uint64_t sent = 0;             // records sent at least once
  uint64_t acknowledged = 0;     // records acknowledged (per retain_until)
  uint64_t dropped = 0;          // records refused: kDropNewest with a full buffer
  uint64_t blocked_calls = 0;    // calls that waited for room (kBlock)
  uint64_t reconnects = 0;       // streams re-established after a break
  uint64_t resent_batches = 0;   // batches sent again after a reconnect
  uint64_t errors = 0;           // errors the daemon reported (records, streams)
  uint64_t buffered_bytes = 0;   // queued + unacknowledged bytes now
  // Tensors copied into the shared-memory ring (WriterOptions::shm_ring_bytes)
  // rather than sent as bytes, and why the last attach of the ring failed
  // ("" while the ring is attached or was never tried).
  uint64_t shm_tensors = 0;
  std::string shm_error;
  // The ring's size now (0: none made yet): shm_ring_bytes, or more once
  // large tensors grew it (WriterOptions::shm_ring_max_bytes).
  size_t shm_ring_bytes = 0;
};

namespace client_internal {
// The wire dtype of a C++ arithmetic type.
template <typename T>
constexpr v1::DType DTypeOf() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>) {
    return v1::DTYPE_BOOL;
  } else if constexpr (std::is_floating_point_v<U>) {
    static_assert(sizeof(U) == 4 || sizeof(U) == 8, "use the raw overload with a dtype for this type");
    return sizeof(U) == 4 ? v1::DTYPE_FLOAT32 : v1::DTYPE_FLOAT64;
  } else {
    static_assert(sizeof(U) <= 8);
    if constexpr (std::is_signed_v<U>) {
      return sizeof(U) == 1 ? v1::DTYPE_INT8 : sizeof(U) == 2 ? v1::DTYPE_INT16
             : sizeof(U) == 4 ? v1::DTYPE_INT32 : v1::DTYPE_INT64;
    } else {
      return sizeof(U) == 1 ? v1::DTYPE_UINT8 : sizeof(U) == 2 ? v1::DTYPE_UINT16
             : sizeof(U) == 4 ? v1::DTYPE_UINT32 : v1::DTYPE_UINT64;
    }
  }
}

template <typename R>
concept ArithmeticRange =
    std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    std::is_arithmetic_v<std::ranges::range_value_t<R>>;

// The bytes of a contiguous range of numbers, borrowed.
template <ArithmeticRange R>
std::span<const std::byte> BytesOf(const R& values) {
  return std::as_bytes(std::span(std::ranges::data(values), std::ranges::size(values)));
}
}  // namespace client_internal

class ShmRing;  // the client's shared-memory ring (internal)

// The memory of one tensor that the caller fills in place before the record
// is logged (Writer::histogram_slot, image_slot, embedding_slot, then
// Writer::submit): a slice of the shared-memory ring, or a plain buffer.
// Move-only; see histogram_slot.
class TensorSlot {
 public:
  TensorSlot(TensorSlot&& other) noexcept;
  TensorSlot& operator=(TensorSlot&& other) noexcept;
  // Gives an unsubmitted slice back to the ring.
  ~TensorSlot();

  // The slot's bytes, and the same as elements of T (the dtype it was made
  // for). Valid until submit() or the slot's destruction.
  std::span<std::byte> bytes();
  template <typename T>
  std::span<T> values() {
    std::span<std::byte> raw = bytes();
    return {reinterpret_cast<T*>(raw.data()), raw.size() / sizeof(T)};
  }
  // Whether the slot lies in the shared-memory ring (zero-copy).
  bool in_shared_memory() const { return ring_ != nullptr; }

 private:
  friend class Writer;
  TensorSlot() = default;
  void Reset();

  v1::Record record_;          // the record, its tensor without payload
  size_t bytes_ = 0;
  ShmRing* ring_ = nullptr;    // borrowed from the Writer; null: heap_
  uint64_t offset_ = 0;        // in the ring
  std::byte* ring_data_ = nullptr;
  std::string heap_;           // the bytes, without a ring
  bool valid_ = false;         // false once submitted or moved from
};

// Streams records to tblogd. Create with Open(); destroying it closes it
// (flushing what is buffered). Record methods return OK once the record is
// buffered; the daemon's verdict on it arrives later through status().
// They return FAILED_PRECONDITION after close(), RESOURCE_EXHAUSTED when the
// record was dropped (kDropNewest), INVALID_ARGUMENT for inputs that cannot be
// right (a shape that does not match the data; a record larger than
// WriterOptions::max_record_bytes, 63 MiB by default: the writer goes on
// without it), or the writer's fatal error.
class Writer {
 public:
  // Starts the background thread and (unless open_in_background) opens the
  // run, returning the daemon's error when that fails.
  static absl::StatusOr<std::unique_ptr<Writer>> Open(WriterOptions options);
  // close() if it was not called; joins the background threads.
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // One scalar point. The hot path: a lock, a tag lookup and four appends.
  absl::Status scalar(std::string_view tag, int64_t step, float value,
                      const RecordOptions& at = {});
  // This writer's contribution to a scalar reduced across the run's writers
  // (e.g. {.op = v1::REDUCE_OP_MEAN}): the daemon writes one point per tag
  // and step once every writer of the group has sent its value.
  absl::Status scalar(std::string_view tag, int64_t step, float value,
                      const ReduceOptions& reduce, const RecordOptions& at = {});
  // PyTorch's add_scalars: each value goes to sub-run
  // "<main_tag with / as _>_<tag>" under tag main_tag, so the curves overlay.
  absl::Status scalars(std::string_view main_tag, int64_t step,
                       const std::map<std::string, float>& values, const RecordOptions& at = {});

  // A histogram of any contiguous range of numbers (vector, span, array). The
  // values are copied once; the daemon computes the buckets.
  template <client_internal::ArithmeticRange R>
  absl::Status histogram(std::string_view tag, int64_t step, const R& values,
                         const HistogramOptions& options = {}, const RecordOptions& at = {}) {
    return histogram(tag, step, client_internal::DTypeOf<std::ranges::range_value_t<R>>(),
                     client_internal::BytesOf(values), options, at);
  }
  // Raw little-endian elements of `dtype`: float16/bfloat16 bit patterns, ...
  absl::Status histogram(std::string_view tag, int64_t step, v1::DType dtype,
                         std::span<const std::byte> data, const HistogramOptions& options = {},
                         const RecordOptions& at = {});

  // Zero-copy histograms: the memory for `count` values of T (or of `dtype`)
  // to fill in place, then submit(). With a shared-memory ring the slot is a
  // slice of it, and the daemon reads the values where the caller wrote
  // them: no copy on the training thread at all. Without one (a remote
  // daemon, a ring not attached yet, one full for 2 s, or one smaller
  // than the tensor) it is an ordinary buffer sent as bytes, so the
  // caller's code is the same either way.
  //
  //   auto slot = writer->histogram_slot<float>("fc1/weight", step, n).value();
  //   std::span<float> values = slot.values<float>();  // fill it
  //   writer->submit(std::move(slot));
  //
  // A slot is used by one thread at a time and must not outlive its Writer.
  // Writing into it after submit() logs garbage (the daemon may read it
  // meanwhile) but is otherwise harmless. A slot dropped without submit()
  // gives its memory back. Slots in the ring are freed in order, so hold
  // one no longer than it takes to fill it.
  template <typename T>
    requires std::is_arithmetic_v<T>
  absl::StatusOr<TensorSlot> histogram_slot(std::string_view tag, int64_t step, size_t count,
                                            const HistogramOptions& options = {},
                                            const RecordOptions& at = {}) {
    return histogram_slot(tag, step, client_internal::DTypeOf<T>(), count, options, at);
  }
  absl::StatusOr<TensorSlot> histogram_slot(std::string_view tag, int64_t step, v1::DType dtype,
                                            size_t count, const HistogramOptions& options = {},
                                            const RecordOptions& at = {});
  // Zero-copy images: the pixels of `shape` (in options.layout: {H, W, C}
  // for HWC, C from 1 to 4; uint8 in [0, 255], float/double in [0, 1]) to
  // fill in place, then submit(); the daemon encodes the PNG from the slot.
  // Otherwise as histogram_slot. INVALID_ARGUMENT for a negative dimension;
  // the daemon checks the rest as for image().
  //
  //   auto slot = writer->image_slot<uint8_t>("samples/input", step, {h, w, 3}).value();
  //   render_into(slot.values<uint8_t>());
  //   writer->submit(std::move(slot));
  template <typename T>
    requires std::is_arithmetic_v<T>
  absl::StatusOr<TensorSlot> image_slot(std::string_view tag, int64_t step,
                                        const std::vector<int64_t>& shape,
                                        const ImageOptions& options = {},
                                        const RecordOptions& at = {}) {
    return image_slot(tag, step, client_internal::DTypeOf<T>(), shape, options, at);
  }
  absl::StatusOr<TensorSlot> image_slot(std::string_view tag, int64_t step, v1::DType dtype,
                                        const std::vector<int64_t>& shape,
                                        const ImageOptions& options = {},
                                        const RecordOptions& at = {});
  // Zero-copy embeddings: a [rows, cols] float32 matrix, row-major, to fill
  // in place (slot.values<float>()), then submit(); metadata as for
  // embedding(). Otherwise as histogram_slot. INVALID_ARGUMENT for a
  // negative dimension.
  absl::StatusOr<TensorSlot> embedding_slot(std::string_view tag, int64_t step, int64_t rows,
                                            int64_t cols, std::vector<std::string> metadata = {},
                                            std::vector<std::string> metadata_header = {},
                                            const RecordOptions& at = {});
  // Logs the record of a filled slot (the same errors as histogram(),
  // image() or embedding()); the slot is consumed either way.
  // FAILED_PRECONDITION for a moved-from slot.
  absl::Status submit(TensorSlot slot);

  // Pixels (uint8 in [0,255], float/double in [0,1]) of `shape` in
  // options.layout ({H, W, C} for HWC); the daemon encodes PNG.
  template <client_internal::ArithmeticRange R>
  absl::Status image(std::string_view tag, int64_t step, const R& pixels,
                     const std::vector<int64_t>& shape, const ImageOptions& options = {},
                     const RecordOptions& at = {}) {
    return image(tag, step, client_internal::DTypeOf<std::ranges::range_value_t<R>>(),
                 client_internal::BytesOf(pixels), shape, options, at);
  }
  absl::Status image(std::string_view tag, int64_t step, v1::DType dtype,
                     std::span<const std::byte> data, const std::vector<int64_t>& shape,
                     const ImageOptions& options = {}, const RecordOptions& at = {});
  // An already encoded PNG or JPEG, passed through.
  absl::Status image_encoded(std::string_view tag, int64_t step, std::string_view encoded,
                             const ImageOptions& options = {}, const RecordOptions& at = {});

  // Markdown text.
  absl::Status text(std::string_view tag, int64_t step, std::string_view markdown,
                    const TextOptions& options = {}, const RecordOptions& at = {});

  // float32 PCM in [-1, 1]: `channels` interleaved channels.
  absl::Status audio(std::string_view tag, int64_t step, std::span<const float> samples,
                     float sample_rate, int64_t channels = 1, const AudioOptions& options = {},
                     const RecordOptions& at = {});

  // A PR curve from labels (bool or 0/1) and predictions in [0,1], counted by
  // the daemon at num_thresholds thresholds.
  template <client_internal::ArithmeticRange L, client_internal::ArithmeticRange P>
  absl::Status pr_curve(std::string_view tag, int64_t step, const L& labels, const P& predictions,
                        uint32_t num_thresholds = 127, const RecordOptions& at = {}) {
    return pr_curve(tag, step, client_internal::DTypeOf<std::ranges::range_value_t<L>>(),
                    client_internal::BytesOf(labels),
                    client_internal::DTypeOf<std::ranges::range_value_t<P>>(),
                    client_internal::BytesOf(predictions), num_thresholds, at);
  }
  absl::Status pr_curve(std::string_view tag, int64_t step, v1::DType labels_dtype,
                        std::span<const std::byte> labels, v1::DType predictions_dtype,
                        std::span<const std::byte> predictions, uint32_t num_thresholds = 127,
                        const RecordOptions& at = {});
  // A PR curve from counts already computed per threshold.
  absl::Status pr_curve(std::string_view tag, int64_t step, const v1::PrCounts& counts,
                        const RecordOptions& at = {});

  // Hyperparameters (usually given at Open instead, in WriterOptions).
  absl::Status hparams(const HParams& hparams, const RecordOptions& at = {});
  // A model graph: a serialized tensorflow.GraphDef, or nodes the daemon
  // turns into one.
  absl::Status graph_def(std::string_view serialized_graph_def, const RecordOptions& at = {});
  absl::Status graph(const v1::NodeList& nodes, const RecordOptions& at = {});
  // A [rows, cols] float32 matrix for the projector, with optional metadata
  // (one label per row, or rows of len(metadata_header) columns).
  absl::Status embedding(std::string_view tag, int64_t step, std::span<const float> matrix,
                         int64_t rows, int64_t cols, std::vector<std::string> metadata = {},
                         std::vector<std::string> metadata_header = {},
                         const RecordOptions& at = {});
  // The custom-scalars dashboard's layout.
  absl::Status custom_scalars(const v1::CustomScalarLayout& layout, const RecordOptions& at = {});
  // Any record, as is (wall_time 0 is set to now): for what the helpers above
  // do not cover.
  absl::Status record(v1::Record record);

  // A barrier: returns when every record buffered before the call is written
  // by the daemon (and fsynced when `sync`). Returns status(), so a record the
  // daemon rejected earlier shows here. Sent in-stream (FLUSH_MODE), ordered
  // with the data; waits across reconnects; close() from another thread ends
  // the wait with FAILED_PRECONDITION.
  absl::Status flush(bool sync = false);
  // Sends what is buffered, waits (up to close_timeout) for it to be
  // acknowledged, ends the stream and (if close_run) the run with `status`,
  // and joins the threads. Later record calls fail. Returns status(), or the
  // reason buffered records could not be delivered. Idempotent.
  absl::Status close(v1::SessionStatus status = v1::SESSION_STATUS_SUCCESS);

  // The first error the daemon reported: a rejected record (RecordError) or a
  // stream/RPC failure that is not retried. OK otherwise.
  absl::Status status() const;
  WriterStats stats() const;
  // The run as the daemon named it; empty until the run is opened (see
  // WriterOptions::open_in_background).
  std::string run_id() const;
  std::string run_path() const;
  const std::string& writer_id() const;

 private:
  class Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  absl::Status Append(v1::Record record);
  // The slot of `record`, whose tensor (ShmRing::SliceTensorOf) has its
  // dtype and shape set and holds `bytes`: a slice of the ring when one is
  // free, else a buffer.
  TensorSlot SlotFor(v1::Record record, size_t bytes);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tblog

#endif  // TBLOG_CLIENT_H_
