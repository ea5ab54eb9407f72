// The dispatch on the record kind: common fields are validated here, each
// kind is converted by its unit under convert/, and every error gets the
// record's kind and tag in front.
#include "daemon/record_converter.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/charge.h"
#include "daemon/convert/custom_scalars.h"
#include "daemon/convert/embedding.h"
#include "daemon/convert/fields.h"
#include "daemon/convert/graph.h"
#include "daemon/convert/histogram.h"
#include "daemon/convert/hparams.h"
#include "daemon/convert/scalars.h"
#include "daemon/convert/summaries.h"
#include "daemon/names.h"
#include "daemon/reduce_convert.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog::daemon {
namespace {

using convert::Describe;
using convert::EventBytes;
using convert::Header;

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
    case v1::Record::kVideo: return "video";
    case v1::Record::kMesh: return "mesh";
    case v1::Record::KIND_NOT_SET: break;
  }
  return "record";
}

// Kinds whose tag TensorBoard fixes: Record.tag is optional and unused.
bool HasFixedTag(v1::Record::KindCase kind) {
  return kind == v1::Record::kHparams || kind == v1::Record::kGraph ||
         kind == v1::Record::kCustomScalars;
}

}  // namespace

RecordConverter::RecordConverter(const Limits& limits, ParallelRunner* parallel,
                                 const ShmRingLookup* shm_rings)
    : limits_(limits), parallel_(parallel), shm_rings_(shm_rings) {}

absl::StatusOr<Converted> RecordConverter::Convert(const v1::Record& record,
                                                   double receive_time,
                                                   std::string_view writer_id,
                                                   const convert::StreamTagsRef* stream_tags) const {
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
    absl::StatusOr<Converted> out =
        convert::ConvertScalarColumns(record.scalars(), receive_time, limits_, stream_tags);
    if (!out.ok()) return Annotate(out.status(), prefix());
    return out;
  }

  const auto convert_kind = [&]() -> absl::StatusOr<Converted> {
    if (!HasFixedTag(kind) || !record.tag().empty()) {
      TBLOG_RETURN_IF_ERROR(ValidateTag(record.tag(), limits_));
    }
    TBLOG_RETURN_IF_ERROR(convert::ValidateSubrun(record.subrun(), limits_));
    TBLOG_RETURN_IF_ERROR(ValidateLabel(record.display_name(), "display_name", limits_.max_tag_bytes));
    TBLOG_RETURN_IF_ERROR(
        ValidateFreeText(record.description(), "description", limits_.max_text_bytes));
    absl::StatusOr<double> wall = convert::WallTime(record.wall_time(), receive_time, "wall_time");
    if (!wall.ok()) return wall.status();
    const Header header{record.tag(), record.subrun(), record.step(), *wall};
    const std::string_view tag = record.tag();

    Converted out;
    if (record.has_reduce()) {  // a contribution to a point reduced across writers
      TBLOG_RETURN_IF_ERROR(
          ConvertContribution(record, header.wall_time, writer_id, limits_, parallel_, out));
      return out;
    }
    absl::StatusOr<tb::Summary::Value> value;
    switch (kind) {
      case v1::Record::kScalar:
        value = convert::ConvertScalar(tag, record.scalar());
        break;
      case v1::Record::kHistogram: {
        absl::StatusOr<HistogramSummary> histogram =
            convert::ConvertHistogram(tag, record.histogram(), limits_, parallel_);
        if (!histogram.ok()) return histogram.status();
        if (histogram->nonfinite_count > 0) {
          out.warnings.push_back(absl::StrCat(prefix(), ": values: ", histogram->nonfinite_count,
                                              " NaN/Inf values left out of the histogram"));
        }
        value = std::move(histogram->value);
        break;
      }
      case v1::Record::kImage: value = convert::ConvertImage(tag, record.image(), limits_); break;
      case v1::Record::kText: value = convert::ConvertText(tag, record.text(), limits_); break;
      case v1::Record::kAudio: value = convert::ConvertAudio(tag, record.audio(), limits_); break;
      case v1::Record::kVideo: value = convert::ConvertVideo(tag, record.video(), limits_); break;
      case v1::Record::kMesh: {
        // One event with a value per component, each described as PyTorch does.
        absl::StatusOr<std::vector<tb::Summary::Value>> values =
            convert::ConvertMesh(tag, record.mesh(), limits_);
        if (!values.ok()) return values.status();
        for (tb::Summary::Value& component : *values) Describe(record, component);
        out.events.push_back(convert::SummaryEvent(header, *std::move(values)));
        return out;
      }
      case v1::Record::kPrCurve:
        value = convert::ConvertPrCurve(tag, record.pr_curve(), limits_);
        break;
      case v1::Record::kCustomScalars:
        value = convert::ConvertCustomScalars(record.custom_scalars());
        break;
      case v1::Record::kHparams:
        TBLOG_RETURN_IF_ERROR(
            convert::ConvertHParamsRecord(record.hparams(), header, limits_, out));
        return out;
      case v1::Record::kGraph: {
        absl::StatusOr<tb::Event> event = convert::ConvertGraph(record.graph(), limits_);
        if (!event.ok()) return event.status();
        event->set_wall_time(header.wall_time);
        event->set_step(header.step);
        out.events.push_back(EventOut{std::string(header.subrun), EventBytes(*event)});
        return out;
      }
      case v1::Record::kEmbedding:
        TBLOG_RETURN_IF_ERROR(convert::ConvertEmbedding(record.embedding(), header, limits_, out));
        return out;
      case v1::Record::kScalars:
      case v1::Record::KIND_NOT_SET: break;
    }
    if (!value.ok()) return value.status();
    if (!HasFixedTag(kind)) Describe(record, *value);
    out.events.push_back(convert::SummaryEvent(header, *std::move(value)));
    return out;
  };
  absl::StatusOr<Converted> out = convert_kind();
  if (!out.ok()) return Annotate(out.status(), prefix());
  return out;
}

BatchConversion RecordConverter::ConvertBatch(v1::WriteRequest& request, double receive_time,
                                              const convert::StreamTagsRef* stream_tags) const {
  // The stream's ring, held (mapped) while its slices are read; without one
  // a slice is refused by ViewTensor, naming the record.
  std::shared_ptr<const ShmRing> ring;
  if (shm_rings_ != nullptr && !request.shm_ring().empty()) {
    ring = shm_rings_->FindBound(request.shm_ring());
  }
  const ScopedShmRing scoped_ring(ring.get());
  BatchConversion out;
  out.converted.reserve(static_cast<size_t>(request.records_size()));
  size_t converted_bytes = 0;
  for (v1::Record& record : *request.mutable_records()) {
    out.converted.push_back(Convert(record, receive_time, request.writer_id(), stream_tags));
    if (out.converted.back().ok()) converted_bytes += convert::HeldBytes(*out.converted.back());
    convert::DropPayload(record);
  }
  out.held_bytes = convert::MessageCharge(request) + converted_bytes +
                   out.converted.capacity() * sizeof(absl::StatusOr<Converted>);
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
  if (convert::HasHParams(request.hparams())) {
    TBLOG_RETURN_IF_ERROR(Annotate(
        convert::AppendRunStartHParams(request.hparams(), now, limits_, out), "hparams"));
  }
  return out;
}

Converted RecordConverter::CloseRunEvents(v1::SessionStatus status, const v1::HParams& hparams,
                                          double now) const {
  return convert::HParamsSessionEnd(status, hparams, now);
}

}  // namespace tblog::daemon
