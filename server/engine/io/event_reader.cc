#include "engine/io/event_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"

namespace tblog {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<EventFileReader>> EventFileReader::Open(const std::string& path) {
  auto records = RecordReader::Open(path);
  if (!records.ok()) return records.status();
  return std::unique_ptr<EventFileReader>(new EventFileReader(std::move(*records)));
}

EventFileReader::EventFileReader(std::unique_ptr<RecordReader> records)
    : records_(std::move(records)) {}

EventFileReader::State EventFileReader::Next(tensorboard::Event* event) {
  if (undecodable_) return State::kUndecodable;
  const uint64_t record_offset = records_->offset();
  switch (records_->Next(&payload_)) {
    case RecordReader::State::kRecord:
      break;
    case RecordReader::State::kEnd:
      error_.clear();
      return State::kEnd;
    case RecordReader::State::kTornTail:
      error_ = records_->error();
      return State::kTornTail;
    case RecordReader::State::kCorrupt:
      error_ = records_->error();
      return State::kCorrupt;
  }
  if (!event->ParseFromString(payload_)) {
    undecodable_ = true;
    error_ = absl::StrCat(records_->path(), ": the record at offset ", record_offset, " (",
                          payload_.size(), " bytes) is not an Event");
    return State::kUndecodable;
  }
  error_.clear();
  return State::kEvent;
}

bool IsEventFileName(std::string_view path) {
  const size_t slash = path.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  return base.find("tfevents") != std::string_view::npos;
}

namespace {

// Depth-first walk; `visited` holds (device, inode) of directories already
// walked, so symlink cycles end.
void WalkRuns(const fs::path& dir, const std::string& name,
              std::set<std::pair<dev_t, ino_t>>* visited, std::vector<RunFiles>* runs) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !visited->insert({st.st_dev, st.st_ino}).second) return;

  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return;  // unreadable: skipped
  RunFiles run;
  std::vector<std::pair<std::string, fs::path>> subdirs;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::directory_entry& entry = *it;
    const std::string base = entry.path().filename().string();
    std::error_code type_ec;
    if (entry.is_directory(type_ec)) {  // follows symlinks
      subdirs.emplace_back(base, entry.path());
    } else if (IsEventFileName(base) && entry.is_regular_file(type_ec)) {
      run.files.push_back(entry.path().string());
    }
  }
  if (!run.files.empty()) {
    std::sort(run.files.begin(), run.files.end());
    run.name = name;
    run.dir = dir.string();
    runs->push_back(std::move(run));
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const auto& [base, path] : subdirs) {
    WalkRuns(path, name == "." ? base : absl::StrCat(name, "/", base), visited, runs);
  }
}

}  // namespace

absl::StatusOr<std::vector<RunFiles>> ListRuns(const std::string& logdir) {
  std::error_code ec;
  const fs::file_status status = fs::status(logdir, ec);
  if (!fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat("logdir ", logdir, " does not exist"));
  }
  if (!fs::is_directory(status)) {
    return absl::FailedPreconditionError(absl::StrCat("logdir ", logdir, " is not a directory"));
  }
  std::vector<RunFiles> runs;
  std::set<std::pair<dev_t, ino_t>> visited;
  WalkRuns(fs::path(logdir), ".", &visited, &runs);
  std::sort(runs.begin(), runs.end(),
            [](const RunFiles& a, const RunFiles& b) { return a.name < b.name; });
  return runs;
}

}  // namespace tblog
