// Requests and records that the daemon's tests build again and again.
#ifndef TBLOG_TESTS_DAEMON_REQUEST_BUILDERS_H_
#define TBLOG_TESTS_DAEMON_REQUEST_BUILDERS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "tblog/v1/tblog.pb.h"

namespace tblog::testing {

// A ScalarColumns record of `points` points of tag "loss": step i, value
// i * value_step.
inline v1::Record ScalarColumnRecord(int points, float value_step = 1.0f) {
  v1::Record record;
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->add_tags()->set_tag("loss");
  for (int i = 0; i < points; ++i) {
    columns->add_tag_index(0);
    columns->add_steps(i);
    columns->add_values(value_step * static_cast<float>(i));
  }
  return record;
}

// Batch `sequence` of `writer` to `run_id`: one record of `tag` at step
// `sequence`, a scalar of `scalar_value`, or, with `padding` > 0, a text of
// that many bytes (a large batch).
inline v1::WriteRequest ScalarBatch(const std::string& run_id, const std::string& writer,
                                    uint64_t sequence, const std::string& tag = "x",
                                    float scalar_value = 0.5f, size_t padding = 0) {
  v1::WriteRequest request;
  request.set_run_id(run_id);
  request.set_writer_id(writer);
  request.set_sequence(sequence);
  v1::Record* record = request.add_records();
  record->set_tag(tag);
  record->set_step(static_cast<int64_t>(sequence));
  record->set_wall_time(1700000000.0 + static_cast<double>(sequence));
  if (padding > 0) {
    record->mutable_text()->set_markdown(std::string(padding, 'p'));
  } else {
    record->mutable_scalar()->set_value(scalar_value);
  }
  return request;
}

}  // namespace tblog::testing

#endif  // TBLOG_TESTS_DAEMON_REQUEST_BUILDERS_H_
