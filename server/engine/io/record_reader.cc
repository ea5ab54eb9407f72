#include "engine/io/record_reader.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/io/crc32c.h"
#include "engine/io/record_writer.h"
#include "base/status_util.h"
#include "base/wire.h"

namespace tblog {

using wire::LoadLittleEndian;

absl::StatusOr<std::unique_ptr<RecordReader>> RecordReader::Open(const std::string& path,
                                                                 FileSystem* fs,
                                                                 uint64_t start_offset) {
  auto file = fs->OpenReadable(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<RecordReader>(new RecordReader(path, *std::move(file), start_offset));
}

RecordReader::RecordReader(std::string path, std::unique_ptr<ReadableFile> file,
                           uint64_t start_offset)
    : path_(std::move(path)),
      file_(std::move(file)),
      offset_(start_offset),
      buffer_offset_(start_offset) {}

RecordReader::~RecordReader() = default;

int64_t RecordReader::Buffer(size_t bytes) {
  size_t held = static_cast<size_t>(buffer_offset_ + buffer_size_ - offset_);
  if (held >= bytes) return static_cast<int64_t>(held);
  // Keep the unread bytes, moved to the front, and read after them.
  if (buffer_.empty()) buffer_.resize(kBufferBytes);
  std::memmove(buffer_.data(), buffer_.data() + (offset_ - buffer_offset_), held);
  buffer_offset_ = offset_;
  buffer_size_ = held;
  if (buffer_size_ < bytes) {
    // One read fills the buffer as far as the file goes (fewer bytes: the
    // end of the file, for now).
    auto got = file_->ReadAt(buffer_offset_ + buffer_size_, buffer_.data() + buffer_size_,
                             buffer_.size() - buffer_size_);
    if (!got.ok()) {
      error_ = std::string(got.status().message());
      return -1;
    }
    buffer_size_ += *got;
  }
  return static_cast<int64_t>(buffer_size_);
}

void RecordReader::DropUnconsumed() {
  buffer_offset_ = offset_;
  buffer_size_ = 0;
}

RecordReader::State RecordReader::TornTail(std::string message) {
  error_ = std::move(message);
  DropUnconsumed();
  return State::kTornTail;
}

RecordReader::State RecordReader::Next(std::string* payload) {
  if (corrupt_) return State::kCorrupt;
  const int64_t held = Buffer(kRecordHeaderBytes);
  if (held < 0) return TornTail(error_);
  if (held == 0) {
    error_.clear();
    DropUnconsumed();
    return State::kEnd;
  }
  if (static_cast<size_t>(held) < kRecordHeaderBytes) {
    return TornTail(absl::StrCat(path_, ": file ends inside the header of the record at offset ",
                                 offset_, " (", held, " of ", kRecordHeaderBytes, " bytes)"));
  }
  const auto* header =
      reinterpret_cast<const unsigned char*>(buffer_.data() + (offset_ - buffer_offset_));
  const uint64_t length = LoadLittleEndian(header, 8);
  const uint32_t length_crc = static_cast<uint32_t>(LoadLittleEndian(header + 8, 4));
  if (crc32c::Mask(crc32c::Extend(0, reinterpret_cast<const char*>(header), 8)) != length_crc) {
    corrupt_ = true;
    error_ = absl::StrCat(path_, ": length CRC mismatch in the record at offset ", offset_);
    return State::kCorrupt;
  }
  const auto torn = [&] {
    return absl::StrCat(path_, ": file ends inside the record at offset ", offset_,
                        " (payload of ", length, " bytes)");
  };

  unsigned char footer[kRecordFooterBytes];
  if (length <= kBufferBytes - kRecordHeaderBytes - kRecordFooterBytes) {
    const size_t framed = FramedRecordSize(length);
    const int64_t got = Buffer(framed);
    if (got < 0) return TornTail(error_);
    if (static_cast<size_t>(got) < framed) return TornTail(torn());
    const char* record = buffer_.data() + (offset_ - buffer_offset_);
    payload->assign(record + kRecordHeaderBytes, length);
    std::memcpy(footer, record + kRecordHeaderBytes + length, sizeof footer);
  } else {
    // Larger than the buffer: read it in place, but do not allocate for
    // bytes the file does not hold (yet).
    auto file_size = file_->Size();
    if (!file_size.ok()) return TornTail(std::string(file_size.status().message()));
    const uint64_t size = *file_size;
    if (size < offset_ + kRecordHeaderBytes ||
        size - offset_ - kRecordHeaderBytes < length ||
        size - offset_ - kRecordHeaderBytes - length < kRecordFooterBytes) {
      return TornTail(torn());
    }
    payload->resize(length);
    uint64_t at = offset_ + kRecordHeaderBytes;
    const auto read_fully = [&](char* to, size_t bytes) {
      auto got = file_->ReadAt(at, to, bytes);
      if (!got.ok() || *got < bytes) return false;
      at += bytes;
      return true;
    };
    if (!read_fully(payload->data(), length) ||
        !read_fully(reinterpret_cast<char*>(footer), sizeof footer)) {
      return TornTail(torn());
    }
    DropUnconsumed();
  }
  if (crc32c::Mask(crc32c::Value(*payload)) != static_cast<uint32_t>(LoadLittleEndian(footer, 4))) {
    corrupt_ = true;
    error_ = absl::StrCat(path_, ": payload CRC mismatch in the record at offset ", offset_,
                          " (", length, " bytes)");
    return State::kCorrupt;
  }
  offset_ += FramedRecordSize(length);
  if (offset_ > buffer_offset_ + buffer_size_) DropUnconsumed();  // read past the buffer
  error_.clear();
  return State::kRecord;
}

}  // namespace tblog
