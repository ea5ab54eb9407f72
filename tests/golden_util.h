// Test helpers around the reference files in TBLOG_GOLDEN_DIR (shared/golden):
// read event files record by record (any event file: the end-to-end tests
// read the daemon's output with ReadEventFile too), raw input arrays, and
// find values.
// Header-only; failures are reported through gtest's ADD_FAILURE.
#ifndef TBLOG_TESTS_GOLDEN_UTIL_H_
#define TBLOG_TESTS_GOLDEN_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "engine/io/record_reader.h"
#include "tblog/tensorboard/event.pb.h"

namespace tblog {

namespace tb = ::tblog::tensorboard;

// Every event in the file at `path`, in order. A file that cannot be opened,
// a torn tail, a CRC mismatch or an undecodable record is a test failure.
inline std::vector<tb::Event> ReadEventFile(const std::string& path) {
  std::vector<tb::Event> events;
  auto reader = RecordReader::Open(path);
  if (!reader.ok()) {
    ADD_FAILURE() << reader.status();
    return events;
  }
  std::string payload;
  while (true) {
    const RecordReader::State state = (*reader)->Next(&payload);
    if (state == RecordReader::State::kEnd) break;
    if (state != RecordReader::State::kRecord) {
      ADD_FAILURE() << "reading " << path << ": " << (*reader)->error();
      break;
    }
    tb::Event event;
    if (!event.ParseFromString(payload)) {
      ADD_FAILURE() << path << ": record " << events.size() << " is not an Event";
      break;
    }
    events.push_back(std::move(event));
  }
  return events;
}

// The events of the golden case `case_dir` (e.g. "scalars_v2", "hparams/trial-1").
inline std::vector<tb::Event> ReadGoldenEvents(const std::string& case_dir) {
  return ReadEventFile(std::string(TBLOG_GOLDEN_DIR) + "/" + case_dir +
                       "/events.out.tfevents.golden");
}

// The whole file as bytes; a failure (and "") when it cannot be read.
inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot open " << path;
    return "";
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A raw little-endian array from the golden dir, e.g. ReadGoldenArray<float>(
// "normal_10000.f32"). Assumes a little-endian host, as the engine does.
template <typename T>
std::vector<T> ReadGoldenArray(const std::string& file_name) {
  const std::string bytes = ReadFileBytes(std::string(TBLOG_GOLDEN_DIR) + "/" + file_name);
  if (bytes.size() % sizeof(T) != 0) {
    ADD_FAILURE() << file_name << ": " << bytes.size() << " bytes is not a multiple of "
                  << sizeof(T);
  }
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

// The first value with `tag` in an event at `step`, or nullptr. The pointer
// lives as long as `events`.
inline const tb::Summary::Value* FindValue(const std::vector<tb::Event>& events,
                                           const std::string& tag, int64_t step) {
  for (const tb::Event& event : events) {
    if (event.step() != step || !event.has_summary()) continue;
    for (const tb::Summary::Value& value : event.summary().value()) {
      if (value.tag() == tag) return &value;
    }
  }
  return nullptr;
}

// We set data_class where TensorBoard's writer leaves it unset
// (tensorboard-format.md §3): expects `ours` to carry `expected`, then clears
// it so that everything else can be compared with TensorBoard's bytes.
inline void ExpectAndClearDataClass(tb::DataClass expected, tb::Summary::Value* ours) {
  EXPECT_EQ(ours->metadata().data_class(), expected);
  ours->mutable_metadata()->clear_data_class();
}

// Expects byte-equal serializations; a mismatch prints both values.
inline void ExpectSameBytes(const tb::Summary::Value& ours, const tb::Summary::Value& golden) {
  EXPECT_EQ(ours.SerializeAsString(), golden.SerializeAsString())
      << "ours:\n" << ours.DebugString() << "golden:\n" << golden.DebugString();
}

}  // namespace tblog

#endif  // TBLOG_TESTS_GOLDEN_UTIL_H_
