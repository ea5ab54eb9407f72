#include "daemon/record_converter.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/names.h"
#include "engine/media/audio_summary.h"
#include "engine/plugins/custom_scalars_summary.h"
#include "engine/media/embedding.h"
#include "engine/plugins/graph_summary.h"
#include "engine/histogram/histogram.h"
#include "engine/plugins/hparams_summary.h"
#include "engine/media/image_summary.h"
#include "engine/media/png.h"
#include "engine/plugins/pr_curve_summary.h"
#include "engine/histogram/scalar_summary.h"
#include "base/status_util.h"
#include "engine/io/tensor_view.h"
#include "engine/media/text_summary.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon {
namespace {

// The API's DType enum uses TensorFlow's numbers, as tblog::DType does, so a
// validated value converts by static_cast.
static_assert(v1::DTYPE_FLOAT32 == static_cast<int>(DType::kFloat32));
static_assert(v1::DTYPE_FLOAT64 == static_cast<int>(DType::kFloat64));
static_assert(v1::DTYPE_INT32 == static_cast<int>(DType::kInt32));
static_assert(v1::DTYPE_UINT8 == static_cast<int>(DType::kUint8));
static_assert(v1::DTYPE_INT16 == static_cast<int>(DType::kInt16));
static_assert(v1::DTYPE_INT8 == static_cast<int>(DType::kInt8));
static_assert(v1::DTYPE_INT64 == static_cast<int>(DType::kInt64));
static_assert(v1::DTYPE_BOOL == static_cast<int>(DType::kBool));
static_assert(v1::DTYPE_BFLOAT16 == static_cast<int>(DType::kBfloat16));
static_assert(v1::DTYPE_UINT16 == static_cast<int>(DType::kUint16));
static_assert(v1::DTYPE_FLOAT16 == static_cast<int>(DType::kFloat16));
static_assert(v1::DTYPE_UINT32 == static_cast<int>(DType::kUint32));
static_assert(v1::DTYPE_UINT64 == static_cast<int>(DType::kUint64));
static_assert(v1::DATASET_TYPE_TRAINING == static_cast<int>(hp::DATASET_TRAINING));
static_assert(v1::DATASET_TYPE_VALIDATION == static_cast<int>(hp::DATASET_VALIDATION));

constexpr uint32_t kDefaultHistogramBuckets = HistogramBuilder::kDefaultBucketCount;
// PyTorch's add_pr_curve default.
constexpr uint32_t kDefaultPrThresholds = 127;

// INVALID_ARGUMENT "<field>: <reason>"; the record's kind and tag are put in
// front by Convert.
absl::Status Bad(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(field), ": ", Sv(reason)));
}

std::string UnknownEnum(int value) { return absl::StrCat("unknown enum value ", value); }

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// A view of `tensor` after checking its dtype, dims, element count (against
// limits.max_tensor_elements) and byte size. Borrows from `tensor`.
absl::StatusOr<TensorView> ViewTensor(const v1::Tensor& tensor, std::string_view field,
                                      const Limits& limits) {
  const int dtype = tensor.dtype();
  if (dtype == v1::DTYPE_UNSPECIFIED) return Bad(field, "dtype is not set");
  if (!IsValidDType(dtype)) return Bad(field, absl::StrCat("dtype: ", UnknownEnum(dtype)));
  TensorView view;
  view.dtype = static_cast<DType>(dtype);
  view.shape = std::span<const int64_t>(tensor.shape().data(), tensor.shape().size());
  view.data = tensor.data();
  int64_t elements = 1;
  for (size_t i = 0; i < view.shape.size(); ++i) {
    const int64_t dim = view.shape[i];
    if (dim < 0) {
      return Bad(field, absl::StrCat("shape ", ShapeString(view.shape), " has a negative dim"));
    }
    if (dim != 0 && elements > limits.max_tensor_elements / dim) {
      elements = limits.max_tensor_elements + 1;  // saturate: it is over the limit anyway
    } else {
      elements *= dim;
    }
  }
  if (elements > limits.max_tensor_elements) {
    return Bad(field, absl::StrCat("shape ", ShapeString(view.shape), " has more than ",
                                   limits.max_tensor_elements, " elements (the limit)"));
  }
  const uint64_t need = static_cast<uint64_t>(elements) * DTypeSize(view.dtype);
  if (need != view.data.size()) {
    return Bad(field, absl::StrCat("tensor data is ", view.data.size(), " bytes but shape ",
                                   ShapeString(view.shape), " and dtype ",
                                   Sv(DTypeName(view.dtype)), " need ", need));
  }
  return view;
}

bool IsFloatDType(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBfloat16;
}

absl::Status RequireFloat(const TensorView& view, std::string_view field) {
  if (IsFloatDType(view.dtype)) return absl::OkStatus();
  return Bad(field, absl::StrCat("dtype ", Sv(DTypeName(view.dtype)),
                                 " is not supported (float16, bfloat16, float32 or float64)"));
}

// Every element as float, NaN and infinities refused (with the first index).
absl::StatusOr<std::vector<float>> FiniteFloats(const TensorView& view, std::string_view field) {
  std::vector<float> out(static_cast<size_t>(view.num_elements()));
  for (size_t i = 0; i < out.size(); ++i) {
    const double v = view.ElementAsDouble(static_cast<int64_t>(i));
    if (!std::isfinite(v)) {
      return Bad(field, absl::StrCat("element ", i, " is ", v, "; must be finite"));
    }
    out[i] = static_cast<float>(v);
  }
  return out;
}

// What every record kind shares once validated.
struct Header {
  std::string_view tag;
  std::string_view subrun;
  int64_t step = 0;
  double wall_time = 0;
};

// The wall_time to write: finite, 0 standing for the receive time.
absl::StatusOr<double> WallTime(double wall_time, double receive_time, std::string_view field) {
  if (!std::isfinite(wall_time)) {
    return Bad(field, absl::StrCat("is ", wall_time, "; must be finite"));
  }
  return wall_time == 0 ? receive_time : wall_time;
}

absl::Status ValidateSubrun(std::string_view subrun, const Limits& limits) {
  if (subrun.empty()) return absl::OkStatus();
  return ValidateRelativePath(subrun, "subrun", limits);
}

std::string EventBytes(const tb::Event& event) { return event.SerializeAsString(); }

EventOut SummaryEvent(const Header& header, tb::Summary::Value value) {
  tb::Event event;
  event.set_wall_time(header.wall_time);
  event.set_step(header.step);
  *event.mutable_summary()->add_value() = std::move(value);
  return EventOut{std::string(header.subrun), EventBytes(event)};
}

// ---------------------------------------------------------------------------
// Scalars

absl::StatusOr<tb::Summary::Value> ScalarOf(std::string_view tag, float value, int style) {
  switch (style) {
    case v1::SCALAR_STYLE_TENSOR: return ScalarValue(tag, value);
    case v1::SCALAR_STYLE_SIMPLE_VALUE: return SimpleScalarValue(tag, value);
    default: return Bad("style", UnknownEnum(style));
  }
}

// The serialized Event of one scalar point, written by hand: a batch of
// columns holds up to millions of points, and building a tb::Event per point
// (several allocations) dominated the daemon's CPU. The bytes are what
// protobuf writes for the same Event (fields in number order, proto3 defaults
// omitted); record_converter_test compares the two.
class ScalarEventLayout {
 public:
  // The layout of `tag`'s events in `style` (a valid ScalarStyle). The
  // tensor and metadata parts come from the engine's own ScalarValue.
  ScalarEventLayout(std::string_view tag, int style) {
    std::string value;  // Summary.Value up to the float
    if (!tag.empty()) AppendLengthDelimited(value, kValueTag, tag);
    if (style == v1::SCALAR_STYLE_SIMPLE_VALUE) {
      value.push_back(kValueSimpleValue);
    } else {
      const tb::Summary::Value model = ScalarValue(tag, 0.0f);
      // float_val (field 5) is the tensor's last field set: its 4 bytes end it.
      const std::string tensor = model.tensor().SerializeAsString();
      value.push_back(kValueTensor);
      AppendVarint(value, tensor.size());
      value.append(tensor, 0, tensor.size() - sizeof(float));
      AppendLengthDelimited(tail_, kValueMetadata, model.metadata().SerializeAsString());
    }
    const size_t value_bytes = value.size() + sizeof(float) + tail_.size();
    head_.push_back(kEventSummary);
    AppendVarint(head_, 1 + VarintSize(value_bytes) + value_bytes);
    head_.push_back(kSummaryValue);
    AppendVarint(head_, value_bytes);
    head_ += value;
  }

  // The Event {wall_time, step, summary {value}} with one allocation.
  std::string Event(double wall_time, int64_t step, float value) const {
    std::string out;
    out.reserve(1 + sizeof(double) + 1 + kMaxVarintBytes + head_.size() + sizeof(float) +
                tail_.size());
    const auto wall_bits = std::bit_cast<uint64_t>(wall_time);
    if (wall_bits != 0) {  // proto3 leaves out a default (+0.0) double
      out.push_back(kEventWallTime);
      AppendLittleEndian(out, wall_bits, sizeof(double));
    }
    if (step != 0) {
      out.push_back(kEventStep);
      AppendVarint(out, static_cast<uint64_t>(step));
    }
    out += head_;
    AppendLittleEndian(out, std::bit_cast<uint32_t>(value), sizeof(float));
    out += tail_;
    return out;
  }

 private:
  // Field keys: (field number << 3) | wire type.
  static constexpr char kEventWallTime = (1 << 3) | 1;      // Event.wall_time, fixed64
  static constexpr char kEventStep = (2 << 3) | 0;          // Event.step, varint
  static constexpr char kEventSummary = (5 << 3) | 2;       // Event.summary
  static constexpr char kSummaryValue = (1 << 3) | 2;       // Summary.value
  static constexpr char kValueTag = (1 << 3) | 2;           // Value.tag
  static constexpr char kValueSimpleValue = (2 << 3) | 5;   // Value.simple_value, fixed32
  static constexpr char kValueTensor = (8 << 3) | 2;        // Value.tensor
  static constexpr char kValueMetadata = static_cast<char>((9 << 3) | 2);  // Value.metadata
  static constexpr size_t kMaxVarintBytes = 10;

  static size_t VarintSize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
      v >>= 7;
      ++n;
    }
    return n;
  }
  static void AppendVarint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  }
  static void AppendLittleEndian(std::string& out, uint64_t bits, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
  }
  static void AppendLengthDelimited(std::string& out, char key, std::string_view bytes) {
    out.push_back(key);
    AppendVarint(out, bytes.size());
    out.append(bytes);
  }

  std::string head_;  // Event.summary's key and length, Summary.value's, the Value up to the float
  std::string tail_;  // the Value after the float (its metadata)
};

absl::StatusOr<Converted> ConvertScalarColumns(const v1::ScalarColumns& columns,
                                               double receive_time, const Limits& limits) {
  for (int i = 0; i < columns.tags_size(); ++i) {
    const v1::ColumnTag& entry = columns.tags(i);
    absl::Status valid = ValidateTag(entry.tag(), limits);
    if (valid.ok()) valid = ValidateSubrun(entry.subrun(), limits);
    if (!valid.ok()) return Annotate(valid, absl::StrCat("tags[", i, "]"));
  }
  const int points = columns.tag_index_size();
  if (columns.steps_size() != points || columns.values_size() != points) {
    return Bad("steps/values", absl::StrCat("tag_index has ", points, " entries, steps ",
                                            columns.steps_size(), ", values ",
                                            columns.values_size(), "; they must agree"));
  }
  if (columns.wall_times_size() != 0 && columns.wall_times_size() != points) {
    return Bad("wall_times", absl::StrCat("has ", columns.wall_times_size(),
                                          " entries; must be empty or one per point (",
                                          points, ")"));
  }
  if (!v1::ScalarStyle_IsValid(columns.style())) {
    return Bad("style", UnknownEnum(columns.style()));
  }
  // Per dictionary entry, built when first used.
  std::vector<std::optional<ScalarEventLayout>> layouts(static_cast<size_t>(columns.tags_size()));
  const bool has_wall_times = columns.wall_times_size() != 0;
  Converted out;
  out.events.reserve(static_cast<size_t>(points));
  for (int i = 0; i < points; ++i) {
    const uint32_t index = columns.tag_index(i);
    if (index >= layouts.size()) {
      return Bad(absl::StrCat("tag_index[", i, "]"),
                 absl::StrCat(index, " is out of range (", columns.tags_size(), " tags)"));
    }
    double wall_time = receive_time;
    if (has_wall_times) {
      const double wall = columns.wall_times(i);
      if (!std::isfinite(wall)) {
        return Bad(absl::StrCat("wall_times[", i, "]"), absl::StrCat("is ", wall, "; must be finite"));
      }
      if (wall != 0) wall_time = wall;
    }
    const v1::ColumnTag& entry = columns.tags(static_cast<int>(index));
    std::optional<ScalarEventLayout>& layout = layouts[index];
    if (!layout) layout.emplace(entry.tag(), columns.style());
    out.events.push_back(
        EventOut{entry.subrun(), layout->Event(wall_time, columns.steps(i), columns.values(i))});
  }
  return out;
}

// ---------------------------------------------------------------------------
// Histograms

absl::StatusOr<HistogramSummary> ConvertHistogram(std::string_view tag, const v1::Histogram& h,
                                                  const Limits& limits,
                                                  ParallelRunner* parallel) {
  if (!h.has_values()) return Bad("values", "not set");
  absl::StatusOr<TensorView> view = ViewTensor(h.values(), "values", limits);
  if (!view.ok()) return view.status();
  HistogramBuilderOptions options;
  options.non_finite = NonFinitePolicy::kSkip;
  options.runner = parallel;
  switch (h.layout()) {
    case v1::HISTOGRAM_LAYOUT_UNIFORM: {
      const uint32_t buckets = h.bucket_count() == 0 ? kDefaultHistogramBuckets : h.bucket_count();
      if (buckets > limits.max_histogram_buckets) {
        return Bad("bucket_count", absl::StrCat(buckets, " is more than the limit of ",
                                                limits.max_histogram_buckets));
      }
      options.bucket_count = static_cast<int>(buckets);
      return HistogramBuilder(options).Uniform(tag, *view);
    }
    case v1::HISTOGRAM_LAYOUT_EXPONENTIAL:
      if (h.bucket_count() != 0) {
        return Bad("bucket_count", "applies to the uniform layout only (exponential buckets are fixed)");
      }
      return HistogramBuilder(options).Exponential(tag, *view);
    default: return Bad("layout", UnknownEnum(h.layout()));
  }
}

// ---------------------------------------------------------------------------
// Images

// A pixel tensor's engine layout and sizes.
struct PixelShape {
  ImageLayout layout = ImageLayout::kHW;
  int64_t batch = 1;  // images in the tensor (1 for the unbatched layouts)
  int64_t height = 0;
  int64_t width = 0;
};

// The engine's layout for `pixels` shaped `shape`, after checking the rank and
// the per-image and per-record limits.
absl::StatusOr<PixelShape> PixelShapeOf(int layout, std::span<const int64_t> shape,
                                        const Limits& limits) {
  PixelShape out;
  const size_t rank = shape.size();
  switch (layout) {
    case v1::PIXEL_LAYOUT_HWC:
    case v1::PIXEL_LAYOUT_CHW:
      if (rank == 2) {
        out.layout = ImageLayout::kHW;
        out.height = shape[0], out.width = shape[1];
      } else if (rank == 3 && layout == v1::PIXEL_LAYOUT_HWC) {
        out.layout = ImageLayout::kHWC;
        out.height = shape[0], out.width = shape[1];
      } else if (rank == 3) {
        out.layout = ImageLayout::kCHW;
        out.height = shape[1], out.width = shape[2];
      } else {
        return Bad("pixels", absl::StrCat("shape ", ShapeString(shape), " has rank ", rank,
                                          "; layout ", Sv(v1::PixelLayout_Name(layout)),
                                          " needs 2 or 3"));
      }
      break;
    case v1::PIXEL_LAYOUT_NHWC:
    case v1::PIXEL_LAYOUT_NCHW: {
      if (rank != 4) {
        return Bad("pixels", absl::StrCat("shape ", ShapeString(shape), " has rank ", rank,
                                          "; layout ", Sv(v1::PixelLayout_Name(layout)),
                                          " needs 4"));
      }
      const bool nhwc = layout == v1::PIXEL_LAYOUT_NHWC;
      out.layout = nhwc ? ImageLayout::kNHWC : ImageLayout::kNCHW;
      out.batch = shape[0];
      out.height = nhwc ? shape[1] : shape[2];
      out.width = nhwc ? shape[2] : shape[3];
      break;
    }
    default: return Bad("layout", UnknownEnum(layout));
  }
  if (out.batch > limits.max_images_per_record) {
    return Bad("pixels", absl::StrCat("batch of ", out.batch,
                                      " images is more than the limit of ",
                                      limits.max_images_per_record));
  }
  // Dims are bounded by max_tensor_elements (ViewTensor), so products of two
  // or three of them cannot overflow.
  if (out.height * out.width > limits.max_image_pixels) {
    return Bad("pixels", absl::StrCat(out.height, "x", out.width, " = ", out.height * out.width,
                                      " pixels is more than the limit of ",
                                      limits.max_image_pixels));
  }
  return out;
}

absl::StatusOr<tb::Summary::Value> ConvertImage(std::string_view tag, const v1::Image& image,
                                                const Limits& limits) {
  if (!v1::ImageStyle_IsValid(image.style())) return Bad("style", UnknownEnum(image.style()));
  if (!v1::PixelLayout_IsValid(image.layout())) return Bad("layout", UnknownEnum(image.layout()));
  const int max_outputs = static_cast<int>(std::min<int64_t>(
      image.max_outputs() == 0 ? kDefaultMaxImageOutputs : image.max_outputs(),
      std::max<int64_t>(limits.max_images_per_record, 1)));
  const bool tensor_style = image.style() == v1::IMAGE_STYLE_TENSOR;
  switch (image.source_case()) {
    case v1::Image::kPixels: {
      absl::StatusOr<TensorView> view = ViewTensor(image.pixels(), "pixels", limits);
      if (!view.ok()) return view.status();
      if (view->dtype != DType::kUint8 && !IsFloatDType(view->dtype)) {
        return Bad("pixels", absl::StrCat("dtype ", Sv(DTypeName(view->dtype)),
                                          " is not supported (uint8, or float in [0,1])"));
      }
      absl::StatusOr<PixelShape> shape = PixelShapeOf(image.layout(), view->shape, limits);
      if (!shape.ok()) return shape.status();
      const bool batched =
          shape->layout == ImageLayout::kNHWC || shape->layout == ImageLayout::kNCHW;
      absl::StatusOr<tb::Summary::Value> value;
      if (tensor_style) {
        value = MakeImageSummaryV2(tag, *view, shape->layout, max_outputs);
      } else if (batched) {
        // The grid holds every image: bound its size as one image's.
        const int64_t grid_pixels = shape->batch * shape->height * shape->width;
        if (grid_pixels > limits.max_image_pixels) {
          return Bad("pixels", absl::StrCat("the tiled grid would have ", grid_pixels,
                                            " pixels, more than the limit of ",
                                            limits.max_image_pixels));
        }
        value = MakeImageGridSummaryV1(tag, *view, shape->layout);
      } else {
        value = MakeImageSummaryV1(tag, *view, shape->layout);
      }
      if (!value.ok()) return Annotate(value.status(), "pixels");
      return value;
    }
    case v1::Image::kEncoded: {
      const std::string& encoded = image.encoded();
      const ImageFormat format = DetectImageFormat(encoded);
      if (format != ImageFormat::kPng && format != ImageFormat::kJpeg) {
        return Bad("encoded", "is neither PNG nor JPEG (checked by its signature)");
      }
      absl::StatusOr<ImageHeader> header = ReadImageHeader(encoded);
      if (!header.ok()) return Annotate(header.status(), "encoded");
      const int64_t pixels = int64_t{header->height} * header->width;
      if (pixels > limits.max_image_pixels) {
        return Bad("encoded", absl::StrCat(header->height, "x", header->width,
                                           " pixels is more than the limit of ",
                                           limits.max_image_pixels));
      }
      absl::StatusOr<tb::Summary::Value> value;
      if (tensor_style) {
        const std::string_view one[] = {encoded};
        value = MakeEncodedImageSummaryV2(tag, one, max_outputs);
      } else {
        value = MakeEncodedImageSummaryV1(tag, encoded);
      }
      if (!value.ok()) return Annotate(value.status(), "encoded");
      return value;
    }
    case v1::Image::SOURCE_NOT_SET: break;
  }
  return Bad("source", "neither pixels nor encoded is set");
}

// ---------------------------------------------------------------------------
// Text and audio

absl::StatusOr<tb::Summary::Value> ConvertText(std::string_view tag, const v1::Text& text,
                                               const Limits& limits) {
  switch (text.content_case()) {
    case v1::Text::kMarkdown: {
      TBLOG_RETURN_IF_ERROR(ValidateFreeText(text.markdown(), "markdown", limits.max_text_bytes));
      return text.torch_style() ? MakeTorchTextSummary(tag, text.markdown())
                                : MakeTextSummary(tag, text.markdown());
    }
    case v1::Text::kTable: {
      if (text.torch_style()) {
        return Bad("torch_style", "PyTorch's add_text has no table form; send markdown");
      }
      const v1::StringTable& table = text.table();
      const auto& shape = table.shape();
      if (shape.size() != 1 && shape.size() != 2) {
        return Bad("table.shape", absl::StrCat(ShapeString({shape.data(), static_cast<size_t>(shape.size())}),
                                               " must have rank 1 or 2"));
      }
      for (int64_t dim : shape) {
        if (dim < 1) return Bad("table.shape", absl::StrCat("dims must be >= 1, got ", dim));
      }
      const int64_t rows = shape[0];
      const int64_t columns = shape.size() == 2 ? shape[1] : 0;
      // Bounding each dim by the cell count first keeps the product from overflowing.
      const int64_t cell_count = table.cells_size();
      if (rows > cell_count || columns > cell_count ||
          rows * std::max<int64_t>(columns, 1) != cell_count) {
        return Bad("table.cells", absl::StrCat("has ", table.cells_size(), " cells but shape ",
                                               ShapeString({shape.data(), static_cast<size_t>(shape.size())}),
                                               " needs ", rows * std::max<int64_t>(columns, 1)));
      }
      size_t total = 0;
      for (int i = 0; i < table.cells_size(); ++i) {
        total += table.cells(i).size();
        TBLOG_RETURN_IF_ERROR(ValidateFreeText(table.cells(i), absl::StrCat("table.cells[", i, "]"),
                                               limits.max_text_bytes));
      }
      if (total > limits.max_text_bytes) {
        return Bad("table.cells", absl::StrCat("hold ", total, " bytes, more than the limit of ",
                                               limits.max_text_bytes));
      }
      const std::vector<std::string> cells(table.cells().begin(), table.cells().end());
      return MakeTextTableSummary(tag, cells, rows, columns);
    }
    case v1::Text::CONTENT_NOT_SET: break;
  }
  return Bad("content", "neither markdown nor table is set");
}

absl::StatusOr<tb::Summary::Value> ConvertAudio(std::string_view tag, const v1::Audio& audio,
                                                const Limits& limits) {
  if (!audio.has_samples()) return Bad("samples", "not set");
  absl::StatusOr<TensorView> view = ViewTensor(audio.samples(), "samples", limits);
  if (!view.ok()) return view.status();
  TBLOG_RETURN_IF_ERROR(RequireFloat(*view, "samples"));
  if (view->shape.size() != 1 && view->shape.size() != 2) {
    return Bad("samples", absl::StrCat("shape ", ShapeString(view->shape),
                                       " must be [frames] or [frames, channels]"));
  }
  if (view->shape[0] > limits.max_audio_frames) {
    return Bad("samples", absl::StrCat(view->shape[0], " frames is more than the limit of ",
                                       limits.max_audio_frames));
  }
  const double rate = audio.sample_rate();
  if (!std::isfinite(rate) || rate <= 0) {
    return Bad("sample_rate", absl::StrCat("is ", rate, "; must be finite and > 0"));
  }
  absl::StatusOr<tb::Summary::Value> value = audio.torch_style()
                                                 ? MakeAudioSummaryV1(tag, *view, rate)
                                                 : MakeAudioSummaryV2(tag, *view, rate, 1);
  if (!value.ok()) return Annotate(value.status(), "samples");
  return value;
}

// ---------------------------------------------------------------------------
// PR curves

absl::StatusOr<tb::Summary::Value> ConvertPrCurve(std::string_view tag, const v1::PrCurve& pr,
                                                  const Limits& limits) {
  switch (pr.data_case()) {
    case v1::PrCurve::kCounts: {
      const v1::PrCounts& c = pr.counts();
      const int t = c.true_positives_size();
      if (c.false_positives_size() != t || c.true_negatives_size() != t ||
          c.false_negatives_size() != t) {
        return Bad("counts", absl::StrCat("rows differ in length: true_positives ", t,
                                          ", false_positives ", c.false_positives_size(),
                                          ", true_negatives ", c.true_negatives_size(),
                                          ", false_negatives ", c.false_negatives_size()));
      }
      if (static_cast<uint64_t>(t) > limits.max_pr_thresholds) {
        return Bad("counts", absl::StrCat(t, " thresholds is more than the limit of ",
                                          limits.max_pr_thresholds));
      }
      const auto doubles = [](const google::protobuf::RepeatedField<float>& row) {
        return std::vector<double>(row.begin(), row.end());
      };
      const std::vector<double> tp = doubles(c.true_positives()), fp = doubles(c.false_positives()),
                                tn = doubles(c.true_negatives()), fn = doubles(c.false_negatives());
      absl::StatusOr<PrCurveData> curve = PrCurveFromCounts(tp, fp, tn, fn);
      if (!curve.ok()) return Annotate(curve.status(), "counts");
      // TensorBoard's pr_curve raw_data_pb writes the tensor as tensor_content.
      return PrCurveValue(tag, *curve, PrCurveEncoding::kTensorContent);
    }
    case v1::PrCurve::kPredictions: {
      const v1::PrPredictions& p = pr.predictions();
      if (!p.has_labels()) return Bad("predictions.labels", "not set");
      if (!p.has_predictions()) return Bad("predictions.predictions", "not set");
      absl::StatusOr<TensorView> labels = ViewTensor(p.labels(), "predictions.labels", limits);
      if (!labels.ok()) return labels.status();
      absl::StatusOr<TensorView> predictions =
          ViewTensor(p.predictions(), "predictions.predictions", limits);
      if (!predictions.ok()) return predictions.status();
      TBLOG_RETURN_IF_ERROR(RequireFloat(*predictions, "predictions.predictions"));
      const int64_t n = predictions->num_elements();
      if (labels->num_elements() != n) {
        return Bad("predictions.labels", absl::StrCat("has ", labels->num_elements(),
                                                      " elements but predictions has ", n));
      }
      const uint32_t thresholds =
          p.num_thresholds() == 0 ? kDefaultPrThresholds : p.num_thresholds();
      if (thresholds < 2 || thresholds > limits.max_pr_thresholds) {
        return Bad("predictions.num_thresholds",
                   absl::StrCat(thresholds, " is outside [2, ", limits.max_pr_thresholds, "]"));
      }
      absl::StatusOr<std::vector<float>> label_values =
          FiniteFloats(*labels, "predictions.labels");
      if (!label_values.ok()) return label_values.status();
      absl::StatusOr<std::vector<float>> prediction_values =
          FiniteFloats(*predictions, "predictions.predictions");
      if (!prediction_values.ok()) return prediction_values.status();
      std::vector<float> weight_values;
      if (p.has_weights()) {
        absl::StatusOr<TensorView> weights =
            ViewTensor(p.weights(), "predictions.weights", limits);
        if (!weights.ok()) return weights.status();
        if (weights->num_elements() != n) {
          return Bad("predictions.weights", absl::StrCat("has ", weights->num_elements(),
                                                         " elements but predictions has ", n));
        }
        absl::StatusOr<std::vector<float>> w = FiniteFloats(*weights, "predictions.weights");
        if (!w.ok()) return w.status();
        weight_values = *std::move(w);
      }
      absl::StatusOr<PrCurveData> curve =
          ComputePrCurve(*label_values, *prediction_values, thresholds, weight_values);
      if (!curve.ok()) return Annotate(curve.status(), "predictions");
      // PyTorch's add_pr_curve writes the tensor as float_val.
      return PrCurveValue(tag, *curve, PrCurveEncoding::kFloatVal);
    }
    case v1::PrCurve::DATA_NOT_SET: break;
  }
  return Bad("data", "neither counts nor predictions is set");
}

// ---------------------------------------------------------------------------
// HParams

absl::StatusOr<HParamValue> ToHParamValue(const v1::HParamValue& value, std::string_view field,
                                          const Limits& limits) {
  switch (value.value_case()) {
    case v1::HParamValue::kNumber:
      if (!std::isfinite(value.number())) {
        return Bad(field, absl::StrCat("number is ", value.number(), "; must be finite"));
      }
      return HParamValue(value.number());
    case v1::HParamValue::kText:
      TBLOG_RETURN_IF_ERROR(ValidateFreeText(value.text(), field, limits.max_text_bytes));
      return HParamValue(value.text());
    case v1::HParamValue::kFlag: return HParamValue(value.flag());
    case v1::HParamValue::VALUE_NOT_SET: break;
  }
  return Bad(field, "no value set (number, text or flag)");
}

hp::DataType TypeOf(const HParamValue& value) {
  if (std::holds_alternative<double>(value)) return hp::DATA_TYPE_FLOAT64;
  if (std::holds_alternative<std::string>(value)) return hp::DATA_TYPE_STRING;
  return hp::DATA_TYPE_BOOL;
}

bool HasHParams(const v1::HParams& hparams) {
  return hparams.values_size() > 0 || hparams.metrics_size() > 0 || hparams.domains_size() > 0;
}

// The API's HParams as the engine's experiment config and session start.
// Hyperparameters are taken in name order (proto maps have none), so output
// is deterministic; a name with only a domain is in the experiment only.
struct HParamsParts {
  ExperimentConfig experiment;
  SessionStart session;
  std::vector<TorchHParamDomain> torch_domains;
  std::vector<std::string> metric_tags;
};

absl::StatusOr<HParamsParts> ConvertHParams(const v1::HParams& hparams, double now,
                                            const Limits& limits) {
  std::map<std::string_view, const v1::HParamValue*> values;
  std::map<std::string_view, const v1::HParamDomain*> domains;
  for (const auto& [name, value] : hparams.values()) values[name] = &value;
  for (const auto& [name, domain] : hparams.domains()) domains[name] = &domain;
  std::vector<std::string_view> names;
  for (const auto& [name, value] : values) names.push_back(name);
  for (const auto& [name, domain] : domains) {
    if (!values.contains(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());

  HParamsParts parts;
  parts.experiment.time_created_secs = now;
  parts.session.start_time_secs = now;
  for (std::string_view name : names) {
    const std::string field = absl::StrCat("values[", EscapeForMessage(name), "]");
    if (name.empty()) return Bad(field, "hparam name is empty");
    TBLOG_RETURN_IF_ERROR(ValidateLabel(name, "hparam name", limits.max_tag_bytes));
    HParamConfig config;
    config.name = std::string(name);
    if (auto it = values.find(name); it != values.end()) {
      absl::StatusOr<HParamValue> value = ToHParamValue(*it->second, field, limits);
      if (!value.ok()) return value.status();
      config.type = TypeOf(*value);
      parts.session.hparams.push_back(HParam{config.name, *std::move(value)});
    }
    if (auto it = domains.find(name); it != domains.end()) {
      const std::string domain_field = absl::StrCat("domains[", EscapeForMessage(name), "]");
      const v1::HParamDomain& domain = *it->second;
      switch (domain.domain_case()) {
        case v1::HParamDomain::kInterval: {
          const double lo = domain.interval().min(), hi = domain.interval().max();
          if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
            return Bad(domain_field, absl::StrCat("interval [", lo, ", ", hi,
                                                  "] must be finite with min <= max"));
          }
          if (hparams.torch_style()) {
            return Bad(domain_field, "PyTorch's add_hparams takes discrete domains only");
          }
          config.domain = HParamInterval{lo, hi};
          if (config.type == hp::DATA_TYPE_UNSET) config.type = hp::DATA_TYPE_FLOAT64;
          break;
        }
        case v1::HParamDomain::kDiscrete: {
          std::vector<HParamValue> list;
          for (int i = 0; i < domain.discrete().values_size(); ++i) {
            absl::StatusOr<HParamValue> v = ToHParamValue(
                domain.discrete().values(i), absl::StrCat(domain_field, ".discrete.values[", i, "]"),
                limits);
            if (!v.ok()) return v.status();
            list.push_back(*std::move(v));
          }
          if (list.empty()) return Bad(domain_field, "discrete domain has no values");
          if (config.type == hp::DATA_TYPE_UNSET) config.type = TypeOf(list.front());
          parts.torch_domains.push_back(TorchHParamDomain{config.name, list});
          config.domain = std::move(list);
          break;
        }
        case v1::HParamDomain::DOMAIN_NOT_SET:
          return Bad(domain_field, "neither interval nor discrete is set");
      }
    }
    parts.experiment.hparams.push_back(std::move(config));
  }

  for (int i = 0; i < hparams.metrics_size(); ++i) {
    const v1::MetricSpec& spec = hparams.metrics(i);
    const std::string field = absl::StrCat("metrics[", i, "]");
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateTag(spec.tag(), limits), field));
    TBLOG_RETURN_IF_ERROR(Annotate(ValidateSubrun(spec.subrun(), limits), field));
    TBLOG_RETURN_IF_ERROR(Annotate(
        ValidateLabel(spec.display_name(), "display_name", limits.max_tag_bytes), field));
    TBLOG_RETURN_IF_ERROR(Annotate(
        ValidateFreeText(spec.description(), "description", limits.max_text_bytes), field));
    if (!v1::DatasetType_IsValid(spec.dataset_type())) {
      return Bad(absl::StrCat(field, ".dataset_type"), UnknownEnum(spec.dataset_type()));
    }
    if (hparams.torch_style() && !spec.subrun().empty()) {
      return Bad(absl::StrCat(field, ".subrun"),
                 "PyTorch's add_hparams names metrics by tag only; leave subrun empty");
    }
    MetricConfig metric;
    metric.tag = spec.tag();
    metric.group = spec.subrun();
    metric.display_name = spec.display_name();
    metric.description = spec.description();
    metric.dataset_type = static_cast<hp::DatasetType>(spec.dataset_type());
    parts.experiment.metrics.push_back(std::move(metric));
    parts.metric_tags.push_back(spec.tag());
  }
  return parts;
}

HParamsStyle StyleOf(const v1::HParams& hparams) {
  return hparams.torch_style() ? HParamsStyle::kPyTorch : HParamsStyle::kTensorBoard;
}

// The experiment config and session start of `hparams` as events of `header`.
absl::Status AppendHParamsStart(const HParamsParts& parts, const v1::HParams& hparams,
                                const Header& header, Converted& out) {
  absl::StatusOr<tb::Summary::Value> experiment =
      HParamsExperimentValue(parts.experiment, StyleOf(hparams));
  if (!experiment.ok()) return experiment.status();
  absl::StatusOr<tb::Summary::Value> session =
      HParamsSessionStartValue(parts.session, StyleOf(hparams));
  if (!session.ok()) return session.status();
  out.events.push_back(SummaryEvent(header, *std::move(experiment)));
  out.events.push_back(SummaryEvent(header, *std::move(session)));
  return absl::OkStatus();
}

absl::Status ConvertHParamsRecord(const v1::HParams& hparams, const Header& header, double now,
                                  const Limits& limits, Converted& out) {
  if (!HasHParams(hparams)) return Bad("values", "no hparams or metrics given");
  absl::StatusOr<HParamsParts> parts = ConvertHParams(hparams, now, limits);
  if (!parts.ok()) return parts.status();
  if (!hparams.torch_style()) return AppendHParamsStart(*parts, hparams, header, out);
  // As SummaryWriter.add_hparams: experiment, session start and end, all in
  // the record's (sub-)run. The metric scalars are the client's to send.
  absl::StatusOr<TorchHParamsValues> values =
      TorchHParamsSummary(parts->session.hparams, parts->metric_tags, parts->torch_domains);
  if (!values.ok()) return values.status();
  out.events.push_back(SummaryEvent(header, std::move(values->experiment)));
  out.events.push_back(SummaryEvent(header, std::move(values->session_start)));
  out.events.push_back(SummaryEvent(header, std::move(values->session_end)));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Embeddings

// The projector files of an embedding, as add_embedding lays them out: no
// event, only files under the (sub-)run, and a block for projector_config.pbtxt.
absl::Status ConvertEmbedding(const v1::Embedding& embedding, const Header& header,
                              const Limits& limits, Converted& out) {
  if (!embedding.has_matrix()) return Bad("matrix", "not set");
  absl::StatusOr<TensorView> matrix = ViewTensor(embedding.matrix(), "matrix", limits);
  if (!matrix.ok()) return matrix.status();
  TBLOG_RETURN_IF_ERROR(RequireFloat(*matrix, "matrix"));
  if (matrix->shape.size() != 2) {
    return Bad("matrix", absl::StrCat("shape ", ShapeString(matrix->shape),
                                      " must be [points, dims]"));
  }
  if (header.step < 0) {
    return Bad("step", absl::StrCat(header.step, " is negative; an embedding's step names its ",
                                    "directory and must be >= 0"));
  }
  EmbeddingLabels labels;
  labels.header.assign(embedding.metadata_header().begin(), embedding.metadata_header().end());
  labels.cells.assign(embedding.metadata().begin(), embedding.metadata().end());
  const bool has_labels = !labels.cells.empty() || !labels.header.empty();
  absl::StatusOr<ProjectorFiles> files =
      BuildProjectorFiles(header.tag, header.step, *matrix, has_labels ? &labels : nullptr);
  if (!files.ok()) return files.status();
  const std::string subrun(header.subrun);
  for (auto& [path, contents] : files->files) {
    out.files.push_back(SideFile{subrun, std::move(path), std::move(contents), false});
  }
  out.files.push_back(
      SideFile{subrun, "projector_config.pbtxt", std::move(files->config_block), true});
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Graphs and custom scalars

absl::StatusOr<tb::AttrValue> ToAttr(const v1::AttrValue& attr, std::string_view field) {
  switch (attr.value_case()) {
    case v1::AttrValue::kS: return StringAttr(attr.s());
    case v1::AttrValue::kI: return IntAttr(attr.i());
    case v1::AttrValue::kF: return FloatAttr(attr.f());
    case v1::AttrValue::kB: return BoolAttr(attr.b());
    case v1::AttrValue::kShape:
      return ShapeAttr({attr.shape().dims().data(), static_cast<size_t>(attr.shape().dims_size())});
    case v1::AttrValue::kList: {
      const v1::AttrList& list = attr.list();
      const int kinds = (list.s_size() > 0) + (list.i_size() > 0) + (list.f_size() > 0) +
                        (list.b_size() > 0) + (list.shape_size() > 0);
      if (kinds > 1) return Bad(field, "a list holds values of more than one kind");
      if (list.i_size() > 0) {
        return IntListAttr({list.i().data(), static_cast<size_t>(list.i_size())});
      }
      if (list.f_size() > 0) {
        return FloatListAttr({list.f().data(), static_cast<size_t>(list.f_size())});
      }
      if (list.b_size() > 0) {
        return BoolListAttr({list.b().data(), static_cast<size_t>(list.b_size())});
      }
      if (list.shape_size() > 0) {
        std::vector<std::vector<int64_t>> shapes;
        for (const v1::Shape& shape : list.shape()) {
          shapes.emplace_back(shape.dims().begin(), shape.dims().end());
        }
        return ShapeListAttr(shapes);
      }
      const std::vector<std::string> strings(list.s().begin(), list.s().end());
      return StringListAttr(strings);
    }
    case v1::AttrValue::VALUE_NOT_SET: break;
  }
  return Bad(field, "no value set");
}

absl::StatusOr<tb::Event> ConvertGraph(const v1::Graph& graph, const Limits& limits) {
  switch (graph.source_case()) {
    case v1::Graph::kGraphDef: {
      if (graph.graph_def().empty()) return Bad("graph_def", "is empty");
      absl::StatusOr<tb::Event> event = GraphDefEvent(graph.graph_def());
      if (!event.ok()) return Annotate(event.status(), "graph_def");
      return event;
    }
    case v1::Graph::kNodes: {
      const v1::NodeList& list = graph.nodes();
      if (list.node_size() == 0) return Bad("nodes", "is empty");
      if (list.node_size() > limits.max_graph_nodes) {
        return Bad("nodes", absl::StrCat(list.node_size(), " nodes is more than the limit of ",
                                         limits.max_graph_nodes));
      }
      std::vector<GraphNode> nodes;
      nodes.reserve(static_cast<size_t>(list.node_size()));
      for (int i = 0; i < list.node_size(); ++i) {
        const v1::Node& node = list.node(i);
        GraphNode out;
        out.name = node.name();
        out.op = node.op();
        out.inputs.assign(node.inputs().begin(), node.inputs().end());
        out.device = node.device();
        // Sorted by name: a proto map has no order, the GraphDef's bytes should.
        std::map<std::string_view, const v1::AttrValue*> attrs;
        for (const auto& [name, value] : node.attrs()) attrs[name] = &value;
        for (const auto& [name, value] : attrs) {
          absl::StatusOr<tb::AttrValue> attr = ToAttr(
              *value, absl::StrCat("nodes[", i, "].attrs[", EscapeForMessage(name), "]"));
          if (!attr.ok()) return attr.status();
          out.attrs.push_back(GraphAttr{std::string(name), *std::move(attr)});
        }
        nodes.push_back(std::move(out));
      }
      // Inputs must name nodes of the list: a typo is an error, not a dangling edge.
      absl::StatusOr<std::string> graph_def = BuildGraphDef(nodes);
      if (!graph_def.ok()) return Annotate(graph_def.status(), "nodes");
      return GraphDefEvent(*std::move(graph_def));
    }
    case v1::Graph::SOURCE_NOT_SET: break;
  }
  return Bad("source", "neither graph_def nor nodes is set");
}

absl::StatusOr<tb::Summary::Value> ConvertCustomScalars(const v1::CustomScalarLayout& layout) {
  std::vector<CustomScalarCategory> categories;
  for (int i = 0; i < layout.categories_size(); ++i) {
    const v1::Category& in = layout.categories(i);
    CustomScalarCategory category;
    category.title = in.title();
    category.closed = in.closed();
    for (int j = 0; j < in.charts_size(); ++j) {
      const v1::Chart& chart = in.charts(j);
      CustomScalarChart out;
      out.title = chart.title();
      switch (chart.content_case()) {
        case v1::Chart::kMultiline:
          out.content = MultilineChart{
              {chart.multiline().tags().begin(), chart.multiline().tags().end()}};
          break;
        case v1::Chart::kMargin: {
          MarginChart margin;
          for (const v1::MarginSeries& s : chart.margin().series()) {
            margin.series.push_back(MarginSeries{s.value(), s.lower(), s.upper()});
          }
          out.content = std::move(margin);
          break;
        }
        case v1::Chart::CONTENT_NOT_SET:
          return Bad(absl::StrCat("categories[", i, "].charts[", j, "]"),
                     "neither multiline nor margin is set");
      }
      category.charts.push_back(std::move(out));
    }
    categories.push_back(std::move(category));
  }
  absl::StatusOr<tb::Layout> built = BuildCustomScalarLayout(categories);
  if (!built.ok()) return Annotate(built.status(), "categories");
  return CustomScalarsLayoutValue(*built);
}

// ---------------------------------------------------------------------------

std::string_view KindName(v1::Record::KindCase kind) {
  switch (kind) {
    case v1::Record::kScalar: return "scalar";
    case v1::Record::kScalars: return "scalars";
    case v1::Record::kHistogram: return "histogram";
    case v1::Record::kImage: return "image";
    case v1::Record::kText: return "text";
    case v1::Record::kAudio: return "audio";
    case v1::Record::kPrCurve: return "pr_curve";
    case v1::Record::kHparams: return "hparams";
    case v1::Record::kGraph: return "graph";
    case v1::Record::kEmbedding: return "embedding";
    case v1::Record::kCustomScalars: return "custom_scalars";
    case v1::Record::KIND_NOT_SET: break;
  }
  return "record";
}

// Kinds whose tag TensorBoard fixes: Record.tag is optional and unused.
bool HasFixedTag(v1::Record::KindCase kind) {
  return kind == v1::Record::kHparams || kind == v1::Record::kGraph ||
         kind == v1::Record::kCustomScalars;
}

// Puts the display name and description on a value's metadata.
void Describe(const v1::Record& record, tb::Summary::Value& value) {
  if (!record.display_name().empty()) {
    value.mutable_metadata()->set_display_name(record.display_name());
  }
  if (!record.description().empty()) {
    value.mutable_metadata()->set_summary_description(record.description());
  }
}

}  // namespace

RecordConverter::RecordConverter(const Limits& limits, ParallelRunner* parallel)
    : limits_(limits), parallel_(parallel) {}

absl::StatusOr<Converted> RecordConverter::Convert(const v1::Record& record,
                                                   double receive_time) const {
  const v1::Record::KindCase kind = record.kind_case();
  if (kind == v1::Record::KIND_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat(
        "record ", EscapeForMessage(record.tag()), ": kind: no record kind is set"));
  }
  // Only for messages: built when needed, not for every record.
  const auto prefix = [&] {
    return record.tag().empty()
               ? std::string(KindName(kind))
               : absl::StrCat(Sv(KindName(kind)), " ", EscapeForMessage(record.tag()));
  };
  // Returned as is (`cond ? out : status` would copy every event).
  if (kind == v1::Record::kScalars) {
    absl::StatusOr<Converted> out = ConvertScalarColumns(record.scalars(), receive_time, limits_);
    if (!out.ok()) return Annotate(out.status(), prefix());
    return out;
  }

  const auto convert = [&]() -> absl::StatusOr<Converted> {
    if (!HasFixedTag(kind) || !record.tag().empty()) {
      TBLOG_RETURN_IF_ERROR(ValidateTag(record.tag(), limits_));
    }
    TBLOG_RETURN_IF_ERROR(ValidateSubrun(record.subrun(), limits_));
    TBLOG_RETURN_IF_ERROR(ValidateLabel(record.display_name(), "display_name", limits_.max_tag_bytes));
    TBLOG_RETURN_IF_ERROR(
        ValidateFreeText(record.description(), "description", limits_.max_text_bytes));
    absl::StatusOr<double> wall = WallTime(record.wall_time(), receive_time, "wall_time");
    if (!wall.ok()) return wall.status();
    const Header header{record.tag(), record.subrun(), record.step(), *wall};
    const std::string_view tag = record.tag();

    Converted out;
    absl::StatusOr<tb::Summary::Value> value;
    switch (kind) {
      case v1::Record::kScalar:
        value = ScalarOf(tag, record.scalar().value(), record.scalar().style());
        break;
      case v1::Record::kHistogram: {
        absl::StatusOr<HistogramSummary> histogram =
            ConvertHistogram(tag, record.histogram(), limits_, parallel_);
        if (!histogram.ok()) return histogram.status();
        if (histogram->nonfinite_count > 0) {
          out.warnings.push_back(absl::StrCat(prefix(), ": values: ", histogram->nonfinite_count,
                                              " NaN/Inf values left out of the histogram"));
        }
        value = std::move(histogram->value);
        break;
      }
      case v1::Record::kImage: value = ConvertImage(tag, record.image(), limits_); break;
      case v1::Record::kText: value = ConvertText(tag, record.text(), limits_); break;
      case v1::Record::kAudio: value = ConvertAudio(tag, record.audio(), limits_); break;
      case v1::Record::kPrCurve: value = ConvertPrCurve(tag, record.pr_curve(), limits_); break;
      case v1::Record::kCustomScalars: value = ConvertCustomScalars(record.custom_scalars()); break;
      case v1::Record::kHparams:
        TBLOG_RETURN_IF_ERROR(
            ConvertHParamsRecord(record.hparams(), header, header.wall_time, limits_, out));
        return out;
      case v1::Record::kGraph: {
        absl::StatusOr<tb::Event> event = ConvertGraph(record.graph(), limits_);
        if (!event.ok()) return event.status();
        event->set_wall_time(header.wall_time);
        event->set_step(header.step);
        out.events.push_back(EventOut{std::string(header.subrun), EventBytes(*event)});
        return out;
      }
      case v1::Record::kEmbedding:
        TBLOG_RETURN_IF_ERROR(ConvertEmbedding(record.embedding(), header, limits_, out));
        return out;
      case v1::Record::kScalars:
      case v1::Record::KIND_NOT_SET: break;
    }
    if (!value.ok()) return value.status();
    if (!HasFixedTag(kind)) Describe(record, *value);
    out.events.push_back(SummaryEvent(header, *std::move(value)));
    return out;
  };
  absl::StatusOr<Converted> out = convert();
  if (!out.ok()) return Annotate(out.status(), prefix());
  return out;
}

absl::StatusOr<Converted> RecordConverter::OpenRunEvents(const v1::OpenRunRequest& request,
                                                         double now) const {
  Converted out;
  if (request.has_purge_step()) {
    // As SummaryWriter(purge_step=s): TensorBoard drops earlier sessions'
    // points at steps >= s when it meets this START.
    tb::Event event;
    event.set_wall_time(now);
    event.set_step(request.purge_step());
    event.mutable_session_log()->set_status(tb::SessionLog::START);
    out.events.push_back(EventOut{"", EventBytes(event)});
  }
  if (HasHParams(request.hparams())) {
    absl::StatusOr<HParamsParts> parts = ConvertHParams(request.hparams(), now, limits_);
    if (!parts.ok()) return Annotate(parts.status(), "hparams");
    const Header header{"", "", 0, now};
    TBLOG_RETURN_IF_ERROR(
        Annotate(AppendHParamsStart(*parts, request.hparams(), header, out), "hparams"));
  }
  return out;
}

Converted RecordConverter::CloseRunEvents(v1::SessionStatus status, const v1::HParams& hparams,
                                          double now) const {
  Converted out;
  if (!HasHParams(hparams)) return out;
  SessionEnd end;
  end.end_time_secs = now;
  switch (status) {
    case v1::SESSION_STATUS_UNSPECIFIED:
    case v1::SESSION_STATUS_SUCCESS: end.status = hp::STATUS_SUCCESS; break;
    case v1::SESSION_STATUS_FAILURE: end.status = hp::STATUS_FAILURE; break;
    case v1::SESSION_STATUS_RUNNING: end.status = hp::STATUS_RUNNING; break;
    default: end.status = hp::STATUS_UNKNOWN; break;
  }
  absl::StatusOr<tb::Summary::Value> value = HParamsSessionEndValue(end, StyleOf(hparams));
  // Cannot fail: the status is one of hp::Status's values. Should the engine
  // ever refuse it, the run still closes, and the warning says why.
  if (value.ok()) {
    out.events.push_back(SummaryEvent(Header{"", "", 0, now}, *std::move(value)));
  } else {
    out.warnings.push_back(absl::StrCat("hparams session end not written: ", value.status().message()));
  }
  return out;
}

}  // namespace tblog::daemon
