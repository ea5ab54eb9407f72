#include "daemon/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/io/crc32c.h"
#include "engine/io/event_file_writer.h"
#include "engine/io/event_reader.h"
#include "engine/io/record_reader.h"
#include "base/status_util.h"

namespace tblog::daemon {
namespace {

constexpr std::string_view kMagic = "tblogd-checkpoint 1";

// Percent-encodes everything but [A-Za-z0-9._-/], so ids with spaces,
// newlines or any byte stay one field.
std::string Encode(std::string_view s) {
  if (s.empty()) return ".";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out == "." ? "%2E" : out;
}

bool Decode(std::string_view s, std::string* out) {
  out->clear();
  if (s == ".") return true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int value = 0;
    for (int k = 1; k <= 2; ++k) {
      const char h = s[i + static_cast<size_t>(k)];
      value <<= 4;
      if (h >= '0' && h <= '9') value |= h - '0';
      else if (h >= 'A' && h <= 'F') value |= h - 'A' + 10;
      else return false;
    }
    out->push_back(static_cast<char>(value));
    i += 2;
  }
  return true;
}

// Cuts a torn or corrupt tail off `path`: everything from the first record
// that does not read back whole.
absl::Status RepairTail(FileSystem& fs, const std::string& path, ResumeRepair* repair) {
  auto reader = RecordReader::Open(path, &fs);
  if (!reader.ok()) return reader.status();
  std::string payload;
  RecordReader::State state;
  while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
  }
  if (state == RecordReader::State::kEnd) return absl::OkStatus();
  const uint64_t keep = (*reader)->offset();
  auto info = fs.Stat(path);
  repair->warnings.push_back(absl::StrCat(path, ": ", (*reader)->error(), "; cut at ", keep));
  TBLOG_RETURN_IF_ERROR(TruncateFile(fs, path, keep));
  ++repair->files_truncated;
  if (info.ok() && info->size > keep) repair->bytes_removed += info->size - keep;
  return absl::OkStatus();
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

// The run directory and every directory below it but .tblogd, symlinks not
// followed.
absl::StatusOr<std::vector<std::string>> RunDirectories(FileSystem& fs,
                                                        const std::string& run_dir) {
  std::vector<std::string> dirs = {run_dir};
  for (size_t i = 0; i < dirs.size(); ++i) {
    auto subdirs = EntriesOfType(fs, dirs[i], FileInfo::Type::kDirectory);
    if (!subdirs.ok()) return subdirs.status();
    for (auto& [path, info] : *subdirs) {
      if (path.substr(path.rfind('/') + 1) != kCheckpointDir) dirs.push_back(std::move(path));
    }
  }
  return dirs;
}

// The event files directly in `dir` (regular files, not symlinks), with
// their sizes, in no order.
absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> EventFilesIn(
    FileSystem& fs, const std::string& dir) {
  auto files = EntriesOfType(fs, dir, FileInfo::Type::kRegular);
  if (!files.ok()) return files.status();
  std::vector<std::pair<std::string, uint64_t>> event_files;
  for (const auto& [path, info] : *files) {
    if (IsEventFileName(path.substr(path.rfind('/') + 1))) {
      event_files.emplace_back(path, info.size);
    }
  }
  return event_files;
}

// True when `path` starts with a file_version event that tblogd wrote later
// than `time`. Unreadable or foreign files are not.
bool CreatedByTblogdAfter(const std::string& path, double time) {
  auto reader = EventFileReader::Open(path);
  if (!reader.ok()) return false;
  tensorboard::Event first;
  if ((*reader)->Next(&first) != EventFileReader::State::kEvent) return false;
  return !first.file_version().empty() &&
         first.source_metadata().writer() == EventFileOptions{}.source_writer &&
         first.wall_time() > time;
}

// Removes the event files of the run that tblogd created after the
// checkpoint, other than those it lists (`listed`, full paths).
absl::Status RemoveFilesAfterCheckpoint(FileSystem& fs, const std::string& run_dir, double time,
                                        const std::vector<std::string>& listed,
                                        ResumeRepair* repair) {
  auto dirs = RunDirectories(fs, run_dir);
  if (!dirs.ok()) return dirs.status();
  for (const std::string& dir : *dirs) {
    auto files = EventFilesIn(fs, dir);
    if (!files.ok()) return files.status();
    bool removed_here = false;
    for (const auto& [path, size] : *files) {
      if (std::find(listed.begin(), listed.end(), path) != listed.end() ||
          !CreatedByTblogdAfter(path, time)) {
        continue;
      }
      TBLOG_RETURN_IF_ERROR(fs.Remove(path));
      repair->warnings.push_back(absl::StrCat(
          path, ": created after the checkpoint, so its batches are resent; removed"));
      ++repair->files_removed;
      repair->bytes_removed += size;
      removed_here = true;
    }
    // Durably gone, or a crash could bring back files the next checkpoint no
    // longer tells apart.
    if (removed_here) TBLOG_RETURN_IF_ERROR(fs.SyncDir(dir));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeCheckpoint(const CheckpointState& state) {
  std::string body = absl::StrCat(Sv(kMagic), "\n");
  for (const auto& [writer, sequence] : state.writer_sequences) {
    absl::StrAppend(&body, "writer ", Encode(writer), " ", sequence, "\n");
  }
  for (const auto& file : state.files) {
    absl::StrAppend(&body, "file ", Encode(file.subrun), " ", Encode(file.file_name), " ",
                    file.length, "\n");
  }
  if (state.time != 0) absl::StrAppendFormat(&body, "time %.17g\n", state.time);
  absl::StrAppendFormat(&body, "end %08x\n", crc32c::Value(body));
  return body;
}

absl::StatusOr<CheckpointState> DecodeCheckpoint(std::string_view text) {
  CheckpointState state;
  size_t pos = 0;
  auto bad = [](std::string_view why) {
    return absl::DataLossError(absl::StrCat("checkpoint is torn or corrupt: ", Sv(why)));
  };
  bool first = true;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) return bad("no end line");
    const std::string_view line = text.substr(pos, eol - pos);
    const std::vector<absl::string_view> fields = absl::StrSplit(Sv(line), ' ');
    if (first) {
      if (line != kMagic) return bad("unknown header");
      first = false;
    } else if (fields[0] == "writer" && fields.size() == 3) {
      std::string writer;
      uint64_t sequence = 0;
      if (!Decode(std::string_view(fields[1].data(), fields[1].size()), &writer) ||
          !absl::SimpleAtoi(fields[2], &sequence)) {
        return bad("bad writer line");
      }
      state.writer_sequences[writer] = sequence;
    } else if (fields[0] == "file" && fields.size() == 4) {
      CheckpointState::EventFile file;
      if (!Decode(std::string_view(fields[1].data(), fields[1].size()), &file.subrun) ||
          !Decode(std::string_view(fields[2].data(), fields[2].size()), &file.file_name) ||
          !absl::SimpleAtoi(fields[3], &file.length)) {
        return bad("bad file line");
      }
      state.files.push_back(std::move(file));
    } else if (fields[0] == "time" && fields.size() == 2) {
      if (!absl::SimpleAtod(fields[1], &state.time)) return bad("bad time line");
    } else if (fields[0] == "end" && fields.size() == 2) {
      uint32_t crc = 0;
      if (!absl::SimpleHexAtoi(fields[1], &crc) || crc != crc32c::Value(text.substr(0, pos))) {
        return bad("CRC mismatch");
      }
      return state;
    } else {
      return bad(absl::StrCat("unknown line \"", Sv(line.substr(0, 40)), "\""));
    }
    pos = eol + 1;
  }
  return bad("no end line");
}

absl::StatusOr<std::unique_ptr<CheckpointFile>> CheckpointFile::Open(const std::string& run_dir,
                                                                     bool sync_directories,
                                                                     FileSystem* fs) {
  const std::string dir = absl::StrCat(run_dir, "/", kCheckpointDir);
  const absl::Status made = fs->CreateDir(dir);
  if (!made.ok() && !absl::IsAlreadyExists(made)) return made;
  if (auto info = fs->Stat(dir); !info.ok() || info->type != FileInfo::Type::kDirectory) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if (made.ok() && sync_directories) TBLOG_RETURN_IF_ERROR(fs->SyncDir(run_dir));
  double previous_time = 0;
  if (auto previous = ReadCheckpoint(run_dir, fs); previous.ok() && previous->has_value()) {
    previous_time = (*previous)->time;
  }
  std::string path = absl::StrCat(dir, "/", kCheckpointFile);
  // Created empty now ("created, never written" to ReadCheckpoint), so that
  // its name is durable before the first Write syncs its contents.
  auto created = fs->OpenWritable(path, FileSystem::OpenMode::kCreateNew);
  if (created.ok()) {
    TBLOG_RETURN_IF_ERROR((*created)->Close());
    if (sync_directories) TBLOG_RETURN_IF_ERROR(fs->SyncDir(dir));
  } else if (!absl::IsAlreadyExists(created.status())) {
    return created.status();
  } else if (auto info = fs->Stat(path); !info.ok() || info->type != FileInfo::Type::kRegular) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file (symlinks are not followed)"));
  }
  return std::unique_ptr<CheckpointFile>(new CheckpointFile(std::move(path), fs, previous_time));
}

absl::Status CheckpointFile::Write(CheckpointState state, bool sync) {
  state.time = std::max(state.time, previous_time_);
  previous_time_ = state.time;
  return RewriteFile(*fs_, path_, EncodeCheckpoint(state), sync);
}

absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(const std::string& run_dir,
                                                              FileSystem* fs) {
  const std::string path = absl::StrCat(run_dir, "/", kCheckpointDir, "/", kCheckpointFile);
  auto text = ReadFileToString(*fs, path);
  if (absl::IsNotFound(text.status())) return std::optional<CheckpointState>();
  if (!text.ok()) return text.status();
  if (text->empty()) return std::optional<CheckpointState>();  // created, never written
  auto state = DecodeCheckpoint(*text);
  if (!state.ok()) return Annotate(state.status(), path);
  return std::optional<CheckpointState>(std::move(*state));
}

absl::StatusOr<ResumeRepair> RepairRunForResume(const std::string& run_dir, FileSystem* fs) {
  ResumeRepair repair;
  auto checkpoint = ReadCheckpoint(run_dir, fs);
  if (!checkpoint.ok() && checkpoint.status().code() != absl::StatusCode::kDataLoss) {
    return checkpoint.status();
  }
  if (checkpoint.ok() && checkpoint->has_value()) {
    const CheckpointState& state = **checkpoint;
    repair.had_checkpoint = true;
    repair.writer_sequences = state.writer_sequences;
    std::vector<std::string> listed;
    for (const auto& file : state.files) {
      const std::string path = file.subrun.empty()
                                   ? absl::StrCat(run_dir, "/", file.file_name)
                                   : absl::StrCat(run_dir, "/", file.subrun, "/", file.file_name);
      listed.push_back(path);
      auto info = fs->Stat(path);
      if (!info.ok() || info->type != FileInfo::Type::kRegular) {
        repair.warnings.push_back(absl::StrCat(path, ": listed in the checkpoint but missing"));
        continue;
      }
      const uint64_t size = info->size;
      if (size < file.length) {
        repair.warnings.push_back(absl::StrCat(path, ": ", size,
                                               " bytes, shorter than the checkpoint's ",
                                               file.length, " (lost in a machine crash?)"));
        TBLOG_RETURN_IF_ERROR(RepairTail(*fs, path, &repair));
        continue;
      }
      if (size > file.length) {
        TBLOG_RETURN_IF_ERROR(TruncateFile(*fs, path, file.length));
        ++repair.files_truncated;
        repair.bytes_removed += size - file.length;
        repair.warnings.push_back(absl::StrCat(path, ": cut from ", size, " to ", file.length,
                                               " bytes (written after the checkpoint)"));
      }
    }
    if (state.time > 0) {
      TBLOG_RETURN_IF_ERROR(RemoveFilesAfterCheckpoint(*fs, run_dir, state.time, listed, &repair));
    } else {
      repair.warnings.push_back(
          "checkpoint has no time (older tblogd): event files created after it are kept");
    }
    return repair;
  }
  if (!checkpoint.ok()) repair.warnings.push_back(std::string(checkpoint.status().message()));
  // No usable checkpoint: repair the newest file of every directory.
  auto dirs = RunDirectories(*fs, run_dir);
  if (!dirs.ok()) return dirs.status();
  for (const std::string& dir : *dirs) {
    auto files = EventFilesIn(*fs, dir);
    if (!files.ok()) return files.status();
    std::string newest;
    for (const auto& [path, size] : *files) newest = std::max(newest, path);
    if (!newest.empty()) TBLOG_RETURN_IF_ERROR(RepairTail(*fs, newest, &repair));
  }
  return repair;
}

}  // namespace tblog::daemon
