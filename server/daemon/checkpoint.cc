#include "daemon/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
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

absl::Status Truncate(const std::string& path, uint64_t length) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path, " to repair it"));
  absl::Status status;
  if (::ftruncate(fd, static_cast<off_t>(length)) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("truncating ", path, " to ", length));
  } else if (::fsync(fd) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("syncing ", path));
  }
  ::close(fd);
  return status;
}

// Cuts a torn or corrupt tail off `path`: everything from the first record
// that does not read back whole.
absl::Status RepairTail(const std::string& path, ResumeRepair* repair) {
  auto reader = RecordReader::Open(path);
  if (!reader.ok()) return reader.status();
  std::string payload;
  RecordReader::State state;
  while ((state = (*reader)->Next(&payload)) == RecordReader::State::kRecord) {
  }
  if (state == RecordReader::State::kEnd) return absl::OkStatus();
  const uint64_t keep = (*reader)->offset();
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  repair->warnings.push_back(absl::StrCat(path, ": ", (*reader)->error(), "; cut at ", keep));
  TBLOG_RETURN_IF_ERROR(Truncate(path, keep));
  ++repair->files_truncated;
  if (!ec && size > keep) repair->bytes_removed += size - keep;
  return absl::OkStatus();
}

// The run directory and every directory below it but .tblogd, symlinks not
// followed.
absl::StatusOr<std::vector<std::string>> RunDirectories(const std::string& run_dir) {
  std::vector<std::string> dirs = {run_dir};
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(run_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_symlink()) continue;
    if (it->is_directory()) {
      if (it->path().filename() == kCheckpointDir) {
        it.disable_recursion_pending();
        continue;
      }
      dirs.push_back(it->path().string());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", run_dir, ": ", ec.message()));
  return dirs;
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
absl::Status RemoveFilesAfterCheckpoint(const std::string& run_dir, double time,
                                        const std::vector<std::string>& listed,
                                        ResumeRepair* repair) {
  auto dirs = RunDirectories(run_dir);
  if (!dirs.ok()) return dirs.status();
  for (const std::string& dir : *dirs) {
    bool removed_here = false;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string path = entry.path().string();
      if (entry.is_symlink() || !entry.is_regular_file() ||
          !IsEventFileName(entry.path().filename().string()) ||
          std::find(listed.begin(), listed.end(), path) != listed.end() ||
          !CreatedByTblogdAfter(path, time)) {
        continue;
      }
      std::error_code size_ec;
      const uint64_t size = std::filesystem::file_size(path, size_ec);
      if (::unlink(path.c_str()) != 0) {
        return absl::ErrnoToStatus(errno, absl::StrCat("removing ", path));
      }
      repair->warnings.push_back(absl::StrCat(
          path, ": created after the checkpoint, so its batches are resent; removed"));
      ++repair->files_removed;
      if (!size_ec) repair->bytes_removed += size;
      removed_here = true;
    }
    if (ec) return absl::InternalError(absl::StrCat("listing ", dir, ": ", ec.message()));
    // Durably gone, or a crash could bring back files the next checkpoint no
    // longer tells apart.
    if (removed_here) TBLOG_RETURN_IF_ERROR(SyncDirectory(dir));
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
                                                                     bool sync_directories) {
  const std::string dir = absl::StrCat(run_dir, "/", kCheckpointDir);
  const bool created_dir = ::mkdir(dir.c_str(), 0755) == 0;
  if (!created_dir && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("creating ", dir));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if (created_dir && sync_directories) TBLOG_RETURN_IF_ERROR(SyncDirectory(run_dir));
  double previous_time = 0;
  if (auto previous = ReadCheckpoint(run_dir); previous.ok() && previous->has_value()) {
    previous_time = (*previous)->time;
  }
  std::string path = absl::StrCat(dir, "/", kCheckpointFile);
  constexpr int kFlags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::open(path.c_str(), kFlags | O_EXCL, 0644);
  const bool created_file = fd >= 0;
  if (!created_file && errno == EEXIST) fd = ::open(path.c_str(), kFlags, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening checkpoint ", path));
  if (created_file && sync_directories) {
    if (absl::Status status = SyncDirectory(dir); !status.ok()) {
      ::close(fd);
      return status;
    }
  }
  return std::unique_ptr<CheckpointFile>(new CheckpointFile(std::move(path), fd, previous_time));
}

CheckpointFile::~CheckpointFile() { ::close(fd_); }

absl::Status CheckpointFile::Write(CheckpointState state, bool sync) {
  state.time = std::max(state.time, previous_time_);
  previous_time_ = state.time;
  const std::string text = EncodeCheckpoint(state);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::pwrite(fd_, text.data() + done, text.size() - done,
                               static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("writing checkpoint ", path_));
    }
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd_, static_cast<off_t>(text.size())) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("truncating checkpoint ", path_));
  }
  if (sync && ::fdatasync(fd_) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("syncing checkpoint ", path_));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<CheckpointState>> ReadCheckpoint(const std::string& run_dir) {
  const std::string path = absl::StrCat(run_dir, "/", kCheckpointDir, "/", kCheckpointFile);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<CheckpointState>();
    return absl::ErrnoToStatus(errno, absl::StrCat("opening checkpoint ", path));
  }
  std::string text;
  char buffer[8192];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return absl::ErrnoToStatus(error, absl::StrCat("reading checkpoint ", path));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  if (text.empty()) return std::optional<CheckpointState>();  // created, never written
  auto state = DecodeCheckpoint(text);
  if (!state.ok()) return Annotate(state.status(), path);
  return std::optional<CheckpointState>(std::move(*state));
}

absl::StatusOr<ResumeRepair> RepairRunForResume(const std::string& run_dir) {
  ResumeRepair repair;
  auto checkpoint = ReadCheckpoint(run_dir);
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
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        repair.warnings.push_back(absl::StrCat(path, ": listed in the checkpoint but missing"));
        continue;
      }
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      if (size < file.length) {
        repair.warnings.push_back(absl::StrCat(path, ": ", size,
                                               " bytes, shorter than the checkpoint's ",
                                               file.length, " (lost in a machine crash?)"));
        TBLOG_RETURN_IF_ERROR(RepairTail(path, &repair));
        continue;
      }
      if (size > file.length) {
        TBLOG_RETURN_IF_ERROR(Truncate(path, file.length));
        ++repair.files_truncated;
        repair.bytes_removed += size - file.length;
        repair.warnings.push_back(absl::StrCat(path, ": cut from ", size, " to ", file.length,
                                               " bytes (written after the checkpoint)"));
      }
    }
    if (state.time > 0) {
      TBLOG_RETURN_IF_ERROR(RemoveFilesAfterCheckpoint(run_dir, state.time, listed, &repair));
    } else {
      repair.warnings.push_back(
          "checkpoint has no time (older tblogd): event files created after it are kept");
    }
    return repair;
  }
  if (!checkpoint.ok()) repair.warnings.push_back(std::string(checkpoint.status().message()));
  // No usable checkpoint: repair the newest file of every directory.
  auto dirs = RunDirectories(run_dir);
  if (!dirs.ok()) return dirs.status();
  std::error_code ec;
  for (const std::string& dir : *dirs) {
    std::string newest;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.is_regular_file() && !entry.is_symlink() &&
          IsEventFileName(entry.path().filename().string())) {
        newest = std::max(newest, entry.path().string());
      }
    }
    if (!newest.empty()) TBLOG_RETURN_IF_ERROR(RepairTail(newest, &repair));
  }
  return repair;
}

}  // namespace tblog::daemon
