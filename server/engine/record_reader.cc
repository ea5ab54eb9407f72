#include "engine/record_reader.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/crc32c.h"
#include "engine/record_writer.h"
#include "engine/status_util.h"

namespace tblog {
namespace {

uint64_t DecodeLe(const unsigned char* p, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RecordReader>> RecordReader::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path, " for reading"));
  }
  return std::unique_ptr<RecordReader>(new RecordReader(path, file));
}

RecordReader::RecordReader(std::string path, std::FILE* file)
    : path_(std::move(path)), file_(file) {}

RecordReader::~RecordReader() { std::fclose(file_); }

RecordReader::State RecordReader::Next(std::string* payload) {
  if (corrupt_) return State::kCorrupt;
  // After an end or a torn tail the stream sits past offset_ with EOF set;
  // go back to the record start so appended bytes are read whole.
  if (::fseeko(file_, static_cast<off_t>(offset_), SEEK_SET) != 0) {
    error_ = absl::StrCat(path_, ": seek to offset ", offset_, " failed: ", std::strerror(errno));
    return State::kTornTail;
  }
  std::clearerr(file_);

  unsigned char header[kRecordHeaderBytes];
  const size_t got = std::fread(header, 1, sizeof(header), file_);
  if (got == 0) {
    error_.clear();
    return State::kEnd;
  }
  if (got < sizeof(header)) {
    error_ = absl::StrCat(path_, ": file ends inside the header of the record at offset ",
                          offset_, " (", got, " of ", sizeof(header), " bytes)");
    return State::kTornTail;
  }
  const uint64_t length = DecodeLe(header, 8);
  const uint32_t length_crc = static_cast<uint32_t>(DecodeLe(header + 8, 4));
  if (crc32c::Mask(crc32c::Extend(0, reinterpret_cast<const char*>(header), 8)) != length_crc) {
    corrupt_ = true;
    error_ = absl::StrCat(path_, ": length CRC mismatch in the record at offset ", offset_);
    return State::kCorrupt;
  }

  // Do not allocate for bytes the file does not hold (yet).
  struct stat st {};
  if (::fstat(fileno(file_), &st) == 0) {
    const uint64_t available = static_cast<uint64_t>(st.st_size) - offset_ - kRecordHeaderBytes;
    if (static_cast<uint64_t>(st.st_size) < offset_ + kRecordHeaderBytes ||
        available < length || available - length < kRecordFooterBytes) {
      error_ = absl::StrCat(path_, ": file ends inside the record at offset ", offset_,
                            " (payload of ", length, " bytes)");
      return State::kTornTail;
    }
  }
  payload->resize(length);
  unsigned char footer[kRecordFooterBytes];
  if (std::fread(payload->data(), 1, length, file_) != length ||
      std::fread(footer, 1, sizeof(footer), file_) != sizeof(footer)) {
    error_ = absl::StrCat(path_, ": file ends inside the record at offset ", offset_,
                          " (payload of ", length, " bytes)");
    return State::kTornTail;
  }
  if (crc32c::Mask(crc32c::Value(*payload)) != static_cast<uint32_t>(DecodeLe(footer, 4))) {
    corrupt_ = true;
    error_ = absl::StrCat(path_, ": payload CRC mismatch in the record at offset ", offset_,
                          " (", length, " bytes)");
    return State::kCorrupt;
  }
  offset_ += FramedRecordSize(length);
  error_.clear();
  return State::kRecord;
}

}  // namespace tblog
