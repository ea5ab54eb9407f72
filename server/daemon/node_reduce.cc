#include "daemon/node_reduce.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "daemon/reduce_convert.h"
#include "daemon/run.h"  // AckSink

namespace tblog::daemon {
namespace {

// What a point costs besides its bins and ids (the map node, the head).
constexpr size_t kPointOverhead = 512;

}  // namespace

struct NodeReduce::Point {
  Contribution state;  // head, op, kind, style, group size, merged values
  absl::flat_hash_set<std::string> contributors;
  std::set<std::string> writers;  // local writers whose batches it holds
  std::set<BatchId> batches;
  absl::Time due;
  size_t bytes = 0;
};

struct NodeReduce::RunState {
  RunSettings settings;
  // Every local writer that has contributed to the run: a point they have
  // all reported is complete as far as this node goes.
  std::set<std::string> contributing;
  std::map<PointKey, Point> pending;
  std::map<BatchId, HeldBatch> held;
  // Writers seen since this daemon started, with the run's own sequences.
  std::map<std::string, WriterView> writers;
  // Flushes waiting for batches held (WhenReleased).
  struct Waiter {
    std::string writer;
    uint64_t through;
    absl::AnyInvocable<void() &&> done;
  };
  std::vector<Waiter> waiters;
};

NodeReduce::NodeReduce(absl::Duration delay) : delay_(delay) {}

NodeReduce::~NodeReduce() = default;

void NodeReduce::NoteOpen(const std::string& run_id, const v1::OpenRunRequest& request) {
  MutexLock lock(&mu_);
  auto& run = runs_[run_id];
  if (!run) run = std::make_unique<RunState>();
  if (run->settings.group_size == 0) run->settings.group_size = request.reduce_group_size();
  if (run->settings.timeout_seconds == 0) {
    run->settings.timeout_seconds = request.reduce_timeout_seconds();
  }
}

absl::StatusOr<Converted> NodeReduce::Take(const std::string& run_id, const std::string& writer_id,
                                           uint64_t sequence, bool resent,
                                           const std::shared_ptr<AckSink>& sink,
                                           Converted converted) {
  const std::shared_ptr<const Contribution> contribution = std::move(converted.contribution);
  converted.contribution = nullptr;
  if (contribution == nullptr) return converted;
  const Contribution& c = *contribution;
  const std::vector<std::string> self{writer_id};
  const std::vector<std::string>& ids = c.contributors.empty() ? self : c.contributors;

  MutexLock lock(&mu_);
  auto& run_ptr = runs_[run_id];
  if (!run_ptr) run_ptr = std::make_unique<RunState>();
  RunState& run = *run_ptr;
  const uint32_t group_size = c.group_size != 0 ? c.group_size : run.settings.group_size;
  if (group_size == 0) {
    return absl::InvalidArgumentError(
        "reduce.group_size: 0, and the run has no reduce_group_size (OpenRunRequest; the "
        "clients take it from WORLD_SIZE): the upstream cannot know when the group is complete");
  }
  std::string alone;
  if (resent) {
    for (const std::string& id : ids) absl::StrAppend(&alone, alone.empty() ? "" : ",", id);
  }
  PointKey key{c.head.subrun(), c.head.tag(), c.head.step(), std::move(alone)};
  auto it = run.pending.find(key);
  if (it == run.pending.end()) {
    if (held_bytes_ + kPointOverhead > kMaxHeldBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the reduced points this node holds for the upstream hold ", held_bytes_,
          " bytes, the limit (", kMaxHeldBytes, "); is the upstream tblogd reachable?"));
    }
    Point point;
    point.state.head = c.head;
    point.state.op = c.op;
    point.state.histogram = c.histogram;
    point.state.style = c.style;
    point.state.group_size = group_size;
    point.due = absl::Now() + delay_;
    point.bytes = kPointOverhead;
    held_bytes_ += kPointOverhead;
    it = run.pending.emplace(std::move(key), std::move(point)).first;
  } else {
    const Contribution& first = it->second.state;
    if (first.group_size != group_size || first.op != c.op || first.histogram != c.histogram) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reduce: group size ", group_size, ", op ", v1::ReduceOp_Name(c.op),
          c.histogram ? " (histogram)" : " (scalar)", " differ from this point's first "
          "contribution: group size ", first.group_size, ", op ", v1::ReduceOp_Name(first.op),
          first.histogram ? " (histogram)" : " (scalar)", " (all contributors must agree)"));
    }
  }
  Point& point = it->second;
  ++contributions_;
  // A contributor the point has (a resent batch) is not merged again, but
  // the batch waits for this point too: its first copy may be in it.
  const bool known = std::any_of(ids.begin(), ids.end(),
                                 [&](const std::string& id) { return point.contributors.contains(id); });
  if (!known) {
    const size_t bins_before = point.state.histo.bins.capacity();
    if (point.state.histogram) {
      point.state.histo.Merge(c.histo);
    } else {
      point.state.scalar.Merge(c.scalar, point.contributors.empty());
    }
    point.contributors.insert(ids.begin(), ids.end());
    size_t added = (point.state.histo.bins.capacity() - bins_before) * sizeof(uint64_t);
    for (const std::string& id : ids) added += sizeof(std::string) + id.size();
    point.bytes += added;
    held_bytes_ += added;
  }
  run.contributing.insert(writer_id);
  point.writers.insert(writer_id);
  if (sequence != 0 && point.batches.insert({writer_id, sequence}).second) {
    HeldBatch& batch = run.held[{writer_id, sequence}];
    if (batch.points++ == 0) ++batches_held_;
    batch.sink = sink;
  }
  // Complete as far as this node goes: every local contributor reported it,
  // or the whole group did.
  if (point.writers.size() >= run.contributing.size() ||
      point.contributors.size() >= point.state.group_size) {
    point.due = std::min(point.due, absl::Now());
  }
  return converted;
}

bool NodeReduce::Defer(const std::string& run_id, const std::string& writer_id,
                       uint64_t sequence) {
  MutexLock lock(&mu_);
  auto& run_ptr = runs_[run_id];
  if (!run_ptr) run_ptr = std::make_unique<RunState>();
  RunState& run = *run_ptr;
  // Batches reach here in the order of their sequences (the run writes and
  // acknowledges them in queue order), each after its Take.
  uint64_t& reached = run.writers[writer_id].reached;
  reached = std::max(reached, sequence);
  auto batch = run.held.find({writer_id, sequence});
  if (batch == run.held.end()) return false;
  batch->second.written = true;
  batch->second.deferred = true;
  return true;
}

uint64_t NodeReduce::FirstHeld(const RunState& run, const std::string& writer) {
  auto it = run.held.lower_bound({writer, 0});
  return it != run.held.end() && it->first.first == writer ? it->first.second : 0;
}

uint64_t NodeReduce::CapValue(const RunState& run, const std::string& writer, uint64_t value) {
  auto view = run.writers.find(writer);
  if (view != run.writers.end()) value = std::min(value, view->second.reached);
  else value = 0;  // nothing of it reached Defer since this daemon started
  const uint64_t first = FirstHeld(run, writer);
  return first == 0 ? value : std::min(value, first - 1);
}

void NodeReduce::Cap(const std::string& run_id, const std::string& writer_id,
                     v1::WriteResponse& ack) {
  MutexLock lock(&mu_);
  auto& run = runs_[run_id];
  if (!run) run = std::make_unique<RunState>();
  WriterView& view = run->writers[writer_id];
  view.written = std::max(view.written, ack.written_sequence());
  view.flushed = std::max(view.flushed, ack.flushed_sequence());
  view.durable = std::max(view.durable, ack.durable_sequence());
  ack.set_written_sequence(CapValue(*run, writer_id, ack.written_sequence()));
  ack.set_flushed_sequence(CapValue(*run, writer_id, ack.flushed_sequence()));
  ack.set_durable_sequence(CapValue(*run, writer_id, ack.durable_sequence()));
}

void NodeReduce::WhenReleased(const std::string& run_id, const std::string& writer_id,
                              uint64_t through_sequence, absl::AnyInvocable<void() &&> done) {
  const uint64_t through = through_sequence == 0 ? UINT64_MAX : through_sequence;
  {
    MutexLock lock(&mu_);
    auto run = runs_.find(run_id);
    if (run != runs_.end()) {
      const uint64_t first = FirstHeld(*run->second, writer_id);
      if (first != 0 && first <= through) {
        run->second->waiters.push_back({writer_id, through, std::move(done)});
        return;
      }
    }
  }
  std::move(done)();
}

uint64_t NodeReduce::CapReported(const std::string& run_id, const std::string& writer_id,
                                 uint64_t written) {
  MutexLock lock(&mu_);
  auto run = runs_.find(run_id);
  if (run == runs_.end() || !run->second->writers.contains(writer_id)) return 0;
  return CapValue(*run->second, writer_id, written);
}

std::vector<std::string> NodeReduce::RunsWithDue(absl::Time now, bool all) const {
  std::vector<std::string> due;
  MutexLock lock(&mu_);
  for (const auto& [id, run] : runs_) {
    for (const auto& [key, point] : run->pending) {
      if (all || point.due <= now) {
        due.push_back(id);
        break;
      }
    }
  }
  return due;
}

NodeReduce::RunSettings NodeReduce::Settings(const std::string& run_id) const {
  MutexLock lock(&mu_);
  auto run = runs_.find(run_id);
  return run == runs_.end() ? RunSettings{} : run->second->settings;
}

namespace {

// The partial record of a point (tblog.proto, Reduce.partial).
v1::Record PartialRecord(const Contribution& state, const absl::flat_hash_set<std::string>& ids) {
  v1::Record record = state.head;
  v1::Reduce& reduce = *record.mutable_reduce();
  reduce.set_op(state.op);
  reduce.set_group_size(state.group_size);
  v1::ReducePartial& partial = *reduce.mutable_partial();
  std::vector<std::string> sorted(ids.begin(), ids.end());
  std::sort(sorted.begin(), sorted.end());
  for (std::string& id : sorted) partial.add_contributors(std::move(id));
  if (state.histogram) {
    record.mutable_histogram()->set_layout(v1::HISTOGRAM_LAYOUT_EXPONENTIAL);
    v1::HistogramPartial& h = *partial.mutable_histogram();
    h.set_first_bin(state.histo.first_bin);
    h.mutable_bin_counts()->Add(state.histo.bins.begin(), state.histo.bins.end());
    h.set_min(state.histo.min);
    h.set_max(state.histo.max);
    h.set_num(state.histo.num);
    h.set_sum(state.histo.sum);
    h.set_sum_squares(state.histo.sum_squares);
  } else {
    record.mutable_scalar()->set_style(state.style);
    v1::ScalarPartial& s = *partial.mutable_scalar();
    s.set_sum(state.scalar.sum);
    s.set_weight(state.scalar.weight);
    s.set_min(state.scalar.min);
    s.set_max(state.scalar.max);
  }
  return record;
}

}  // namespace

std::vector<NodePartial> NodeReduce::TakeDue(const std::string& run_id, absl::Time now, bool all,
                                             size_t max_points) {
  std::vector<NodePartial> partials;
  MutexLock lock(&mu_);
  auto found = runs_.find(run_id);
  if (found == runs_.end()) return partials;
  RunState& run = *found->second;
  // Points go in step order per series (subrun, tag): the upstream writes a
  // point once its group is complete, and one that opens after a later step
  // of its series was written counts as late. So a series stops at its first
  // point not due, or holding a batch not yet in the local files.
  std::optional<std::pair<std::string, std::string>> blocked;
  for (auto it = run.pending.begin(); it != run.pending.end() && partials.size() < max_points;) {
    Point& point = it->second;
    std::pair<std::string, std::string> series{std::get<0>(it->first), std::get<1>(it->first)};
    if (blocked == series) {
      ++it;
      continue;
    }
    // Recorded here: written, and in a checkpoint (a batch that wrote no
    // event leaves no marker, so only the checkpoint tells a resume it was
    // written, and its resend then counts as a duplicate: `resent`).
    const bool written =
        std::all_of(point.batches.begin(), point.batches.end(), [&](const BatchId& id) {
          auto batch = run.held.find(id);
          if (batch == run.held.end()) return true;
          auto writer = run.writers.find(id.first);
          return batch->second.written && writer != run.writers.end() &&
                 writer->second.flushed >= id.second;
        });
    if (!written || (!all && point.due > now)) {
      blocked = std::move(series);
      ++it;
      continue;
    }
    NodePartial partial;
    partial.record = PartialRecord(point.state, point.contributors);
    partial.batches.assign(point.batches.begin(), point.batches.end());
    partial.bytes = point.bytes;  // held until the upstream acknowledges it
    partials.push_back(std::move(partial));
    it = run.pending.erase(it);
  }
  return partials;
}

void NodeReduce::Acknowledged(const std::string& run_id, const std::vector<NodePartial>& partials) {
  struct Delivery {
    std::shared_ptr<AckSink> sink;
    v1::WriteResponse ack;
    int completed = 0;
  };
  std::map<AckSink*, Delivery> deliveries;
  std::vector<absl::AnyInvocable<void() &&>> flushes;
  {
    MutexLock lock(&mu_);
    auto found = runs_.find(run_id);
    if (found == runs_.end()) return;
    RunState& run = *found->second;
    std::set<std::string> touched;
    std::vector<std::pair<std::weak_ptr<AckSink>, std::string>> released;
    for (const NodePartial& partial : partials) {
      ++partials_sent_;
      for (const BatchId& id : partial.batches) {
        auto batch = run.held.find(id);
        if (batch == run.held.end() || --batch->second.points > 0) continue;
        if (batch->second.deferred) released.emplace_back(batch->second.sink, id.first);
        touched.insert(id.first);
        run.held.erase(batch);
        --batches_held_;
      }
    }
    for (const NodePartial& partial : partials) {
      held_bytes_ -= std::min(partial.bytes, held_bytes_);
    }
    for (auto it = run.waiters.begin(); it != run.waiters.end();) {
      const uint64_t first = FirstHeld(run, it->writer);
      if (first != 0 && first <= it->through) {
        ++it;
        continue;
      }
      flushes.push_back(std::move(it->done));
      it = run.waiters.erase(it);
    }
    // The deferred acks: the writer's sequences as the run last gave them,
    // capped below what is still held; one completed batch each.
    for (auto& [weak, writer] : released) {
      std::shared_ptr<AckSink> sink = weak.lock();
      if (!sink) continue;  // the stream is gone: its client resends
      Delivery& delivery = deliveries[sink.get()];
      delivery.sink = std::move(sink);
      ++delivery.completed;
      const WriterView& view = run.writers[writer];
      delivery.ack.set_written_sequence(CapValue(run, writer, view.written));
      delivery.ack.set_flushed_sequence(CapValue(run, writer, view.flushed));
      delivery.ack.set_durable_sequence(CapValue(run, writer, view.durable));
    }
  }
  for (auto& [key, delivery] : deliveries) {
    delivery.sink->OnAck(std::move(delivery.ack), delivery.completed);
  }
  for (auto& done : flushes) std::move(done)();
}

absl::Time NodeReduce::NextDue() const {
  absl::Time next = absl::InfiniteFuture();
  MutexLock lock(&mu_);
  for (const auto& [id, run] : runs_) {
    for (const auto& [key, point] : run->pending) next = std::min(next, point.due);
  }
  return next;
}

NodeReduce::Stats NodeReduce::stats() const {
  MutexLock lock(&mu_);
  return Stats{contributions_, partials_sent_, batches_held_, held_bytes_};
}

}  // namespace tblog::daemon
