#include "daemon/checkpoint.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/io/crc32c.h"
#include "base/status_util.h"

namespace tblog::daemon {
namespace {

constexpr std::string_view kMagic = "tblogd-checkpoint 2";
constexpr std::string_view kMagicV1 = "tblogd-checkpoint 1";

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
  for (const auto& [key, batch] : state.batches) {
    for (const auto& [subrun, part] : batch.parts) {
      absl::StrAppend(&body, "batch ", Encode(key.writer_id), " ", key.sequence, " ",
                      batch.parts_expected, " ", Encode(subrun), " ", part.events, " ",
                      part.complete ? 1 : 0, "\n");
    }
  }
  for (const auto& [series, step] : state.reduced_steps) {
    absl::StrAppend(&body, "step ", Encode(series.first), " ", Encode(series.second), " ", step,
                    "\n");
  }
  for (const std::string& point : state.pending_points) {
    absl::StrAppend(&body, "pending ", absl::Base64Escape(point), "\n");
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
      if (line != kMagic && line != kMagicV1) return bad("unknown header");
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
    } else if (fields[0] == "batch" && fields.size() == 7) {
      BatchKey key;
      std::string subrun;
      uint32_t parts_expected = 0;
      BatchPart part;
      int complete = 0;
      if (!Decode(std::string_view(fields[1].data(), fields[1].size()), &key.writer_id) ||
          !absl::SimpleAtoi(fields[2], &key.sequence) || key.sequence == 0 ||
          !absl::SimpleAtoi(fields[3], &parts_expected) ||
          !Decode(std::string_view(fields[4].data(), fields[4].size()), &subrun) ||
          !absl::SimpleAtoi(fields[5], &part.events) || !absl::SimpleAtoi(fields[6], &complete)) {
        return bad("bad batch line");
      }
      part.complete = complete != 0;
      RecoveredBatch& batch = state.batches[key];
      batch.parts_expected = std::max(batch.parts_expected, parts_expected);
      batch.parts[subrun] = part;
    } else if (fields[0] == "step" && fields.size() == 4) {
      std::pair<std::string, std::string> series;
      int64_t step = 0;
      if (!Decode(std::string_view(fields[1].data(), fields[1].size()), &series.first) ||
          !Decode(std::string_view(fields[2].data(), fields[2].size()), &series.second) ||
          !absl::SimpleAtoi(fields[3], &step)) {
        return bad("bad step line");
      }
      state.reduced_steps[std::move(series)] = step;
    } else if (fields[0] == "pending" && fields.size() == 2) {
      std::string point;
      if (!absl::Base64Unescape(fields[1], &point)) return bad("bad pending line");
      state.pending_points.push_back(std::move(point));
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

bool RecoveredBatch::Complete() const {
  if (parts_expected == 0) return false;
  uint32_t complete = 0;
  for (const auto& [subrun, part] : parts) complete += part.complete ? 1 : 0;
  return complete >= parts_expected;
}

std::string CheckpointPath(const std::string& run_dir, const std::string& daemon_id) {
  return absl::StrCat(run_dir, "/", kCheckpointDir, "/", daemon_id, kCheckpointSuffix);
}

absl::StatusOr<std::unique_ptr<CheckpointFile>> CheckpointFile::Open(const std::string& run_dir,
                                                                     const std::string& daemon_id,
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
  if (auto previous = ReadCheckpoint(run_dir, daemon_id, fs);
      previous.ok() && previous->has_value()) {
    previous_time = (*previous)->time;
  }
  std::string path = CheckpointPath(run_dir, daemon_id);
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
                                                              const std::string& daemon_id,
                                                              FileSystem* fs) {
  std::string path = CheckpointPath(run_dir, daemon_id);
  auto text = ReadFileToString(*fs, path);
  if (absl::IsNotFound(text.status())) {
    // tblogd before daemon identities kept one checkpoint per run.
    path = absl::StrCat(run_dir, "/", kCheckpointDir, "/", kLegacyCheckpointFile);
    text = ReadFileToString(*fs, path);
  }
  if (absl::IsNotFound(text.status())) return std::optional<CheckpointState>();
  if (!text.ok()) return text.status();
  if (text->empty()) return std::optional<CheckpointState>();  // created, never written
  auto state = DecodeCheckpoint(*text);
  if (!state.ok()) return Annotate(state.status(), path);
  return std::optional<CheckpointState>(std::move(*state));
}

}  // namespace tblog::daemon
