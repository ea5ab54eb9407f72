#include "daemon/resume_scan.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/batch_marker.h"
#include "daemon/contribution_record.h"
#include "engine/io/event_reader.h"
#include "engine/io/record_reader.h"
#include "tblog/v1/tblog.pb.h"

namespace tblog::daemon {
namespace {

constexpr std::string_view kEventFilePrefix = "events.out.tfevents.";

// Consumes a run of digits at the front of *s; how many.
size_t TakeDigits(std::string_view* s) {
  size_t n = 0;
  while (n < s->size() && std::isdigit(static_cast<unsigned char>((*s)[n]))) ++n;
  s->remove_prefix(n);
  return n;
}

// The entries of `dir` of type `type` (symlinks are their own type: never
// followed), as full paths. An entry gone meanwhile is skipped.
absl::StatusOr<std::vector<std::pair<std::string, FileInfo>>> EntriesOfType(
    FileSystem& fs, const std::string& dir, FileInfo::Type type) {
  auto names = fs.ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<std::pair<std::string, FileInfo>> entries;
  for (const std::string& name : *names) {
    std::string path = absl::StrCat(dir, "/", name);
    auto info = fs.Stat(path);
    if (info.ok() && info->type == type) entries.emplace_back(std::move(path), *info);
  }
  return entries;
}

// The sub-runs of the run: every directory below it but .tblogd, relative
// ("" = the run directory), symlinks not followed.
absl::StatusOr<std::vector<std::string>> Subruns(FileSystem& fs, const std::string& run_dir) {
  std::vector<std::string> subruns = {""};
  for (size_t i = 0; i < subruns.size(); ++i) {
    const std::string dir = subruns[i].empty() ? run_dir : absl::StrCat(run_dir, "/", subruns[i]);
    auto subdirs = EntriesOfType(fs, dir, FileInfo::Type::kDirectory);
    if (!subdirs.ok()) return subdirs.status();
    for (auto& [path, info] : *subdirs) {
      const std::string name = path.substr(path.rfind('/') + 1);
      if (subruns[i].empty() && name == kCheckpointDir) continue;
      subruns.push_back(subruns[i].empty() ? name : absl::StrCat(subruns[i], "/", name));
    }
  }
  return subruns;
}

// Reads one sub-run's stream of own files from `start_offset` of files[0] on,
// counting events per batch into `batches`, and cuts a torn or corrupt tail
// off each file. Returns the stream's end: the last file and its length.
class SubrunScan {
 public:
  SubrunScan(FileSystem& fs, std::string subrun, ResumeRepair& repair)
      : fs_(fs), subrun_(std::move(subrun)), repair_(repair) {}

  absl::StatusOr<CheckpointState::EventFile> Scan(const std::vector<std::string>& files,
                                                  uint64_t start_offset) {
    CheckpointState::EventFile end{subrun_, "", 0};
    for (size_t i = 0; i < files.size(); ++i) {
      auto length = ScanFile(files[i], i == 0 ? start_offset : 0);
      if (!length.ok()) return length.status();
      end.file_name = files[i].substr(files[i].rfind('/') + 1);
      end.length = *length;
    }
    // As partials with their contributors (a compact record's is the writer
    // of the batch it was written with).
    for (const auto& [key, records] : contributions_) {
      for (const auto& [record, writer] : records) {
        absl::StatusOr<Contribution> c = DecodePartialRecord(record, writer);
        if (!c.ok()) {
          repair_.warnings.push_back(absl::StrCat("sub-run \"", subrun_, "\": ", c.status().message()));
          continue;
        }
        repair_.contributions.push_back(PartialRecord(c->head, c->op, c->histogram, c->style,
                                                      c->group_size, c->scalar, c->histo,
                                                      c->contributors)
                                            .SerializeAsString());
      }
    }
    return end;
  }

 private:
  // Returns the file's length after the repair.
  absl::StatusOr<uint64_t> ScanFile(const std::string& path, uint64_t offset) {
    auto reader = RecordReader::Open(path, &fs_, offset);
    if (!reader.ok()) return reader.status();
    ++repair_.files_scanned;
    std::string payload;
    RecordReader::State state;
    while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
      repair_.bytes_scanned += payload.size();
      OnEvent(payload);
    }
    const uint64_t keep = (*reader)->offset();
    if (state == RecordReader::State::kEnd) return keep;
    auto info = fs_.Stat(path);
    repair_.warnings.push_back(absl::StrCat((*reader)->error(), "; cut at ", keep));
    TBLOG_RETURN_IF_ERROR(TruncateFile(fs_, path, keep));
    ++repair_.files_truncated;
    if (info.ok() && info->size > keep) repair_.bytes_removed += info->size - keep;
    return keep;
  }

  void OnEvent(std::string_view event) {
    BatchMarker marker;
    std::string_view contribution;
    switch (ClassifyEvent(event, &marker, &contribution)) {
      case EventKind::kFileVersion:
        return;
      case EventKind::kMarker:
        if (!marker.end.empty()) {
          RecoveredBatch& batch = repair_.resumed.batches[marker.end];
          BatchPart& part = batch.parts[subrun_];
          if (marker.end_parts > 0) {
            part.complete = true;
            batch.parts_expected = std::max(batch.parts_expected, marker.end_parts);
          }
        }
        current_ = marker.begin;
        if (!current_.empty()) (void)repair_.resumed.batches[current_].parts[subrun_];
        return;
      case EventKind::kEvent:
      case EventKind::kUndecodable:
        if (!current_.empty()) ++repair_.resumed.batches[current_].parts[subrun_].events;
        NoteStep(event);
        return;
      case EventKind::kReducedPoint:  // not one of its batch's events
        NoteStep(event, /*reduced=*/true);
        return;
      case EventKind::kContribution:
        NoteContribution(contribution);
        return;
    }
  }

  // Keeps the highest step of each tag (ResumeRepair::last_steps), and drops
  // the contributions held for the tag's points up to it: their point is in
  // the files.
  // A reduced point's step also goes to reduced_steps: the run's next
  // checkpoint names the series' last reduced step only if the run knows
  // the series is reduced (RunReductions::WrittenSteps), and the resume
  // after that one reads only past that checkpoint.
  void NoteStep(std::string_view event, bool reduced = false) {
    std::string_view tag;
    int64_t step = 0;
    if (!TagAndStep(event, &tag, &step)) return;
    auto [it, added] = repair_.last_steps.try_emplace({subrun_, std::string(tag)}, step);
    if (!added) it->second = std::max(it->second, step);
    if (reduced) {
      auto [r, r_added] = repair_.reduced_steps.try_emplace({subrun_, std::string(tag)}, step);
      if (!r_added) r->second = std::max(r->second, step);
    }
    if (contributions_.empty()) return;
    const std::string key_tag(tag);
    contributions_.erase(contributions_.lower_bound({key_tag, INT64_MIN}),
                         contributions_.upper_bound({key_tag, step}));
  }

  // Holds a contribution record until its point's event turns up (points
  // complete in step order, so few are held at a time: those of the points
  // pending at the end, whatever the length of the files).
  void NoteContribution(std::string_view record) {
    v1::Record parsed;
    if (!parsed.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
      repair_.warnings.push_back(absl::StrCat("sub-run \"", subrun_,
                                              "\": an undecodable contribution record skipped"));
      return;
    }
    contributions_[{parsed.tag(), parsed.step()}].emplace_back(std::string(record),
                                                               current_.writer_id);
  }

  FileSystem& fs_;
  const std::string subrun_;
  ResumeRepair& repair_;
  BatchKey current_;  // the batch the events being read belong to
  // Contribution records whose point's event was not read yet, by (tag,
  // step), each with the writer of the batch it was written with.
  std::map<std::pair<std::string, int64_t>, std::vector<std::pair<std::string, std::string>>>
      contributions_;
};

}  // namespace

std::string DaemonIdentity(const EventFileOptions& options) {
  if (!options.hostname.empty()) return options.hostname;
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

absl::Status ValidateDaemonId(std::string_view id) {
  if (id.empty() || id.size() > 64 || id.front() == '.') {
    return absl::InvalidArgumentError(absl::StrCat(
        "daemon id '", Sv(id), "' must be 1 to 64 characters and not start with '.'"));
  }
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "daemon id '", Sv(id), "' may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

bool IsOwnEventFile(std::string_view name, std::string_view daemon_id) {
  if (!name.starts_with(kEventFilePrefix)) return false;
  name.remove_prefix(kEventFilePrefix.size());
  if (TakeDigits(&name) == 0 || !name.starts_with('.')) return false;
  name.remove_prefix(1);
  if (!name.starts_with(daemon_id)) return false;
  name.remove_prefix(daemon_id.size());
  if (!name.starts_with('.')) return false;
  name.remove_prefix(1);
  if (TakeDigits(&name) == 0 || !name.starts_with('.')) return false;  // pid
  name.remove_prefix(1);
  // The counter has 6 digits or more, so an id that is another's followed by
  // ".<digits>" does not pass for it.
  return TakeDigits(&name) >= 6;
}

uint64_t LatestEventFileSecond(FileSystem& fs, const std::string& dir) {
  auto names = fs.ListDir(dir);
  if (!names.ok()) return 0;
  uint64_t latest = 0;
  for (std::string_view name : *names) {
    if (!name.starts_with(kEventFilePrefix)) continue;
    name.remove_prefix(kEventFilePrefix.size());
    std::string_view rest = name;
    const size_t digits = TakeDigits(&rest);
    uint64_t seconds = 0;
    if (digits > 0 && absl::SimpleAtoi(Sv(name.substr(0, digits)), &seconds)) {
      latest = std::max(latest, seconds);
    }
  }
  return latest;
}

absl::StatusOr<ResumeRepair> RepairRunForResume(const std::string& run_dir,
                                                const std::string& daemon_id, FileSystem* fs) {
  ResumeRepair repair;
  auto checkpoint = ReadCheckpoint(run_dir, daemon_id, fs);
  if (!checkpoint.ok() && checkpoint.status().code() != absl::StatusCode::kDataLoss) {
    return checkpoint.status();
  }
  std::map<std::string, CheckpointState::EventFile> positions;  // by sub-run
  if (checkpoint.ok() && checkpoint->has_value()) {
    repair.had_checkpoint = true;
    repair.writer_sequences = (*checkpoint)->writer_sequences;
    repair.resumed.batches = std::move((*checkpoint)->batches);
    repair.reduced_steps = std::move((*checkpoint)->reduced_steps);
    repair.last_steps = repair.reduced_steps;
    repair.contributions = std::move((*checkpoint)->pending_points);
    for (auto& file : (*checkpoint)->files) positions[file.subrun] = std::move(file);
  } else if (!checkpoint.ok()) {
    // Scanning all of the daemon's files finds what the checkpoint knew.
    repair.warnings.push_back(
        absl::StrCat(checkpoint.status().message(), "; scanning all event files"));
  }

  auto subruns = Subruns(*fs, run_dir);
  if (!subruns.ok()) return subruns.status();
  for (const std::string& subrun : *subruns) {
    const std::string dir = subrun.empty() ? run_dir : absl::StrCat(run_dir, "/", subrun);
    auto entries = EntriesOfType(*fs, dir, FileInfo::Type::kRegular);
    if (!entries.ok()) return entries.status();
    std::vector<std::string> own;  // full paths, in name (TensorBoard's) order
    for (const auto& [path, info] : *entries) {
      if (IsOwnEventFile(path.substr(path.rfind('/') + 1), daemon_id)) own.push_back(path);
    }
    std::sort(own.begin(), own.end());
    uint64_t start_offset = 0;
    auto position = positions.find(subrun);
    if (position != positions.end()) {
      // Scan from the checkpoint's position on: the file it names, then the
      // later ones.
      const std::string at = absl::StrCat(dir, "/", position->second.file_name);
      const auto first = std::lower_bound(own.begin(), own.end(), at);
      if (first == own.end() || *first != at) {
        repair.warnings.push_back(absl::StrCat(at, ": in the checkpoint but missing"));
      } else if (auto info = fs->Stat(at); info.ok() && info->size < position->second.length) {
        repair.warnings.push_back(absl::StrCat(at, ": ", info->size,
                                               " bytes, shorter than the checkpoint's ",
                                               position->second.length,
                                               " (lost in a machine crash?); scanned whole"));
      } else {
        start_offset = position->second.length;
      }
      own.erase(own.begin(), first);
    }
    if (own.empty()) {
      if (position != positions.end()) repair.resumed.files.push_back(position->second);
      continue;
    }
    auto end = SubrunScan(*fs, subrun, repair).Scan(own, start_offset);
    if (!end.ok()) return Annotate(end.status(), absl::StrCat("scanning ", dir));
    repair.resumed.files.push_back(*std::move(end));
  }

  // Per writer, on from the checkpoint's sequence while the next batch is
  // whole; what is at or below that is settled.
  for (const auto& [key, batch] : repair.resumed.batches) {
    uint64_t& sequence = repair.writer_sequences[key.writer_id];
    if (key.sequence == sequence + 1 && batch.Complete()) sequence = key.sequence;
  }
  std::erase_if(repair.resumed.batches, [&](const auto& entry) {
    return entry.first.sequence <= repair.writer_sequences[entry.first.writer_id];
  });
  std::erase_if(repair.writer_sequences, [](const auto& entry) { return entry.second == 0; });
  return repair;
}

}  // namespace tblog::daemon
