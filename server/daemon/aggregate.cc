#include "daemon/aggregate.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/contribution_record.h"

namespace tblog::daemon {
namespace {

constexpr double kMaxTimeoutSeconds = 86400;

std::string_view OpName(v1::ReduceOp op) {
  switch (op) {
    case v1::REDUCE_OP_MEAN: return "MEAN";
    case v1::REDUCE_OP_SUM: return "SUM";
    case v1::REDUCE_OP_MIN: return "MIN";
    case v1::REDUCE_OP_MAX: return "MAX";
    case v1::REDUCE_OP_COUNT: return "COUNT";
    case v1::REDUCE_OP_MERGE: return "MERGE";
    default: return "UNSPECIFIED";
  }
}

// What a point's entry costs beyond its state and ids (map node, hash set).
constexpr size_t kPointOverhead = 512;
constexpr size_t kIdOverhead = sizeof(std::string) + 16;

void Append(Converted& to, Converted from) {
  for (EventOut& event : from.events) to.events.push_back(std::move(event));
}

}  // namespace

RunReductions::RunReductions(absl::Duration default_timeout, ReduceMetrics* metrics)
    : default_timeout_(default_timeout), metrics_(metrics) {}

absl::Status RunReductions::ValidateOpen(const v1::OpenRunRequest& request) {
  if (request.reduce_group_size() > kMaxReduceGroupSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("reduce_group_size: ", request.reduce_group_size(),
                     " is more than the limit of ", kMaxReduceGroupSize));
  }
  const double timeout = request.reduce_timeout_seconds();
  if (!std::isfinite(timeout) || timeout < 0 || timeout > kMaxTimeoutSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("reduce_timeout_seconds: ", timeout,
                                                   " is outside [0, ", kMaxTimeoutSeconds, "]"));
  }
  return absl::OkStatus();
}

absl::Status RunReductions::Configure(const v1::OpenRunRequest& request) {
  const uint32_t group_size = request.reduce_group_size();
  const absl::Duration timeout = absl::Seconds(request.reduce_timeout_seconds());
  MutexLock lock(&mu_);
  if (group_size != 0 && group_size_ != 0 && group_size != group_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduce_group_size: ", group_size, " differs from the run's ", group_size_,
        " (set by the writer that opened it; every writer of a run gives the same)"));
  }
  if (timeout != absl::ZeroDuration() && timeout_ != absl::ZeroDuration() && timeout != timeout_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduce_timeout_seconds: ", request.reduce_timeout_seconds(), " differs from the run's ",
        absl::ToDoubleSeconds(timeout_)));
  }
  if (group_size != 0) group_size_ = group_size;
  if (timeout != absl::ZeroDuration()) timeout_ = timeout;
  return absl::OkStatus();
}

absl::Duration RunReductions::TimeoutLocked() const {
  return timeout_ == absl::ZeroDuration() ? default_timeout_ : timeout_;
}

absl::StatusOr<Converted> RunReductions::Absorb(std::string_view writer_id, Converted converted,
                                                absl::Time now) {
  const std::shared_ptr<const Contribution> contribution = std::move(converted.contribution);
  converted.contribution = nullptr;
  if (contribution == nullptr) return converted;
  const Contribution& c = *contribution;
  const std::vector<std::string> self{std::string(writer_id)};
  const std::vector<std::string>& ids = c.contributors.empty() ? self : c.contributors;

  MutexLock lock(&mu_);
  const uint32_t group_size = c.group_size != 0 ? c.group_size : group_size_;
  if (group_size == 0) {
    return absl::InvalidArgumentError(
        "reduce.group_size: 0, and the run has no reduce_group_size (OpenRunRequest; the "
        "clients take it from WORLD_SIZE): the daemon cannot know when the group is complete");
  }
  Key key{c.head.subrun(), c.head.tag(), c.head.step()};
  auto it = pending_.find(key);
  if (it == pending_.end()) {
    if (auto last = last_step_.find({c.head.subrun(), c.head.tag()});
        last != last_step_.end() && c.head.step() <= last->second) {
      // Its point (or a later one of the series) was written.
      late_ += ids.size();
      if (metrics_ != nullptr) metrics_->late += ids.size();
      return converted;
    }
    if (pending_bytes_ + kPointOverhead > kMaxPendingBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the run's reduced points waiting for their group hold ", pending_bytes_,
          " bytes, the limit (", kMaxPendingBytes, "); its contributions arrive only at ",
          "their timeout, or the steps of several tags are far apart"));
    }
    it = pending_.emplace(std::move(key), NewPoint(c, group_size, now)).first;
  } else {
    const Point& point = it->second;
    if (point.group_size != group_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reduce.group_size: ", group_size, " differs from ", point.group_size,
          ", the group size of this point's first contribution (all contributors must agree)"));
    }
    if (point.op != c.op) {
      return absl::InvalidArgumentError(absl::StrCat("reduce.op: ", Sv(OpName(c.op)), " differs from ",
                                                     Sv(OpName(point.op)),
                                                     ", the op of this point's first contribution"));
    }
  }
  Point& point = it->second;
  if (!MergeInto(point, c, ids)) {
    // A partial cannot be split: it counts whole or not at all.
    duplicate_ += ids.size();
    if (metrics_ != nullptr) metrics_->duplicate += ids.size();
    return converted;
  }
  if (metrics_ != nullptr) metrics_->contributions += ids.size();
  if (point.contributors.size() >= point.group_size) {
    Point complete = std::move(point);
    const Key done_key = it->first;
    pending_.erase(it);
    // The point's event stands for its contributions' records.
    Append(converted, Finish(done_key, std::move(complete), now, /*timed_out=*/false));
  } else {
    // In the files with its batch, so that acknowledging the batch
    // (written_sequence) means the contribution survives a crash.
    converted.events.push_back(ContributionEvent(
        c.head.subrun(), ContributionRecordBytes(c, group_size, ids), c.head.wall_time()));
  }
  return converted;
}

RunReductions::Point RunReductions::NewPoint(const Contribution& c, uint32_t group_size,
                                             absl::Time now) const {
  Point point;
  point.head = c.head;
  point.op = c.op;
  point.histogram = c.histogram;
  point.style = c.style;
  point.group_size = group_size;
  point.first_arrival = now;
  point.deadline = now + TimeoutLocked();
  return point;
}

bool RunReductions::MergeInto(Point& point, const Contribution& c,
                              const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    if (point.contributors.contains(id)) return false;
  }
  const size_t bins_before = point.histo.bins.capacity();
  if (point.histogram) {
    point.histo.Merge(c.histo);
  } else {
    point.scalar.Merge(c.scalar, point.contributors.empty());
  }
  point.contributors.insert(ids.begin(), ids.end());
  size_t added = point.bytes == 0 ? kPointOverhead : 0;
  if (point.histo.bins.capacity() > bins_before) {
    added += (point.histo.bins.capacity() - bins_before) * sizeof(uint64_t);
  }
  for (const std::string& id : ids) added += kIdOverhead + id.size();
  point.bytes += added;
  pending_bytes_ += added;
  point.head.set_wall_time(std::max(point.head.wall_time(), c.head.wall_time()));
  return true;
}

RunReductions::RestoreCounts RunReductions::Restore(const std::vector<std::string>& records,
                                                    absl::Time now) {
  RestoreCounts counts;
  MutexLock lock(&mu_);
  for (const std::string& bytes : records) {
    absl::StatusOr<Contribution> c = DecodePartialRecord(bytes);
    if (!c.ok()) {
      ++counts.undecodable;
      continue;
    }
    Key key{c->head.subrun(), c->head.tag(), c->head.step()};
    if (auto last = last_step_.find({c->head.subrun(), c->head.tag()});
        last != last_step_.end() && c->head.step() <= last->second) {
      continue;  // its point is in the files
    }
    auto it = pending_.find(key);
    if (it == pending_.end()) {
      it = pending_.emplace(std::move(key), NewPoint(*c, c->group_size, now)).first;
      ++counts.points;
    } else if (it->second.group_size != c->group_size || it->second.op != c->op ||
               it->second.histogram != c->histogram) {
      ++counts.undecodable;  // never written so: the files were tampered with
      continue;
    }
    // Records overlap only where the scan read past a checkpoint's position
    // again (a file shorter than it said): the checkpoint's state holds them.
    if (MergeInto(it->second, *c, c->contributors)) {
      counts.contributions += c->contributors.size();
    } else if (it->second.contributors.empty()) {
      pending_.erase(it);  // ids repeated within the record: never written so
      --counts.points;
      ++counts.undecodable;
    }
  }
  for (auto& [key, point] : pending_) {
    // Complete but its event not in the files (torn): written at the next
    // tick, with no contributor missing.
    if (point.contributors.size() >= point.group_size) point.deadline = now;
  }
  return counts;
}

std::vector<std::string> RunReductions::PendingRecords() const {
  MutexLock lock(&mu_);
  std::vector<std::string> records;
  records.reserve(pending_.size());
  for (const auto& [key, point] : pending_) {
    const std::vector<std::string> ids(point.contributors.begin(), point.contributors.end());
    records.push_back(PartialRecord(point.head, point.op, point.histogram, point.style,
                                    point.group_size, point.scalar, point.histo, ids)
                          .SerializeAsString());
  }
  return records;
}

Converted RunReductions::Finish(const Key& key, Point point, absl::Time now, bool timed_out) {
  pending_bytes_ -= point.bytes;
  const uint64_t count = point.contributors.size();
  if (timed_out && count < point.group_size) {
    missing_ += point.group_size - count;
    if (metrics_ != nullptr) metrics_->missing += point.group_size - count;
  }
  ++points_;
  if (metrics_ != nullptr) metrics_->AddPoint(now - point.first_arrival, timed_out);
  Converted out = PointEvents(point.head, point.op, point.histogram, point.style, point.scalar,
                              point.histo, count);
  for (EventOut& event : out.events) MarkReducedPoint(event);
  const Series series{std::get<0>(key), std::get<1>(key)};
  int64_t& last = last_step_.try_emplace(series, std::get<2>(key)).first->second;
  last = std::max(last, std::get<2>(key));
  reduced_series_.insert(series);
  return out;
}

SeriesSteps RunReductions::WrittenSteps() const {
  MutexLock lock(&mu_);
  SeriesSteps steps;
  for (const Series& series : reduced_series_) {
    if (auto it = last_step_.find(series); it != last_step_.end()) steps.insert(*it);
  }
  return steps;
}

void RunReductions::NoteWritten(const SeriesSteps& steps, const SeriesSteps& reduced) {
  MutexLock lock(&mu_);
  for (const auto& [series, step] : reduced) {
    reduced_series_.insert(series);
    int64_t& last = last_step_.try_emplace(series, step).first->second;
    last = std::max(last, step);
  }
  for (const auto& [series, step] : steps) {
    int64_t& last = last_step_.try_emplace(series, step).first->second;
    last = std::max(last, step);
  }
}

bool RunReductions::HasDue(absl::Time now) const {
  MutexLock lock(&mu_);
  for (const auto& [key, point] : pending_) {
    if (point.deadline <= now) return true;
  }
  return false;
}

Converted RunReductions::TakeDue(absl::Time now) {
  Converted out;
  MutexLock lock(&mu_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    const Key key = it->first;
    Point point = std::move(it->second);
    it = pending_.erase(it);
    Append(out, Finish(key, std::move(point), now, /*timed_out=*/true));
  }
  return out;
}

Converted RunReductions::TakeAll(absl::Time now) {
  Converted out;
  MutexLock lock(&mu_);
  while (!pending_.empty()) {
    auto it = pending_.begin();
    const Key key = it->first;
    Point point = std::move(it->second);
    pending_.erase(it);
    Append(out, Finish(key, std::move(point), now, /*timed_out=*/true));
  }
  return out;
}

void RunReductions::AddTo(v1::RunInfo& info) const {
  MutexLock lock(&mu_);
  info.set_reduce_points(points_);
  info.set_reduce_contributions_late(late_);
  info.set_reduce_contributions_missing(missing_);
  info.set_reduce_contributions_duplicate(duplicate_);
}

}  // namespace tblog::daemon
