// Scalar columns (convert/scalars.h) through RecordConverter::Convert; the
// single scalar is in record_converter_test with the common fields.
#include "daemon/record_converter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "convert_test_util.h"
#include "daemon/convert/stream_tags.h"
#include "engine/histogram/scalar_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

// Scalar columns' events, unpacked (Converted::packed): each with its
// series' subrun and tag, its bytes and its step.
struct PointOut {
  std::string subrun;
  std::string tag;
  std::string event;
  int64_t step;
};

std::vector<PointOut> Points(const Converted& out) {
  EXPECT_TRUE(out.events.empty());  // columns give packed events only
  std::vector<PointOut> points;
  const PackedEvents& packed = out.packed;
  for (size_t i = 0; i < packed.events.size(); ++i) {
    const PackedEvents::Series& series = packed.series.at(packed.events[i].series);
    points.push_back(
        {series.subrun, series.tag, std::string(packed.event(i)), packed.events[i].step});
  }
  return points;
}

tb::Event ParseEvent(const PointOut& point) {
  tb::Event event;
  EXPECT_TRUE(event.ParseFromString(point.event));
  return event;
}

TEST_F(RecordConverterTest, ScalarColumnsBecomeOneEventPerPointInOrder) {
  v1::Record record;
  record.set_tag("ignored");
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->add_tags()->set_tag("loss");
  v1::ColumnTag* validation = columns->add_tags();
  validation->set_tag("loss");
  validation->set_subrun("validation");
  for (uint32_t index : {0u, 1u, 0u}) columns->add_tag_index(index);
  for (int64_t step : {1, 1, 2}) columns->add_steps(step);
  for (float value : {0.5f, 0.75f, 0.25f}) columns->add_values(value);
  for (double wall : {100.0, 0.0, 300.0}) columns->add_wall_times(wall);
  const std::vector<PointOut> points = Points(Ok(record));
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].subrun, "");
  EXPECT_EQ(points[1].subrun, "validation");
  EXPECT_EQ(points[2].subrun, "");
  const float values[] = {0.5f, 0.75f, 0.25f};
  const int64_t steps[] = {1, 1, 2};
  const double walls[] = {100.0, kReceiveTime, 300.0};
  for (size_t i = 0; i < 3; ++i) {
    const tb::Event event = ParseEvent(points[i]);
    EXPECT_EQ(event.step(), steps[i]);
    EXPECT_EQ(points[i].step, steps[i]);
    EXPECT_EQ(points[i].tag, "loss");
    EXPECT_EQ(event.wall_time(), walls[i]);
    EXPECT_EQ(event.summary().value(0).tag(), "loss");
    EXPECT_EQ(event.summary().value(0).tensor().float_val(0), values[i]);
  }
}

TEST_F(RecordConverterTest, ScalarColumnsWithoutWallTimesUseReceiveTimeAndSimpleStyle) {
  v1::Record record;
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->add_tags()->set_tag("acc");
  columns->set_style(v1::SCALAR_STYLE_SIMPLE_VALUE);
  columns->add_tag_index(0);
  columns->add_steps(10);
  columns->add_values(0.9f);
  const std::vector<PointOut> points = Points(Ok(record));
  ASSERT_EQ(points.size(), 1u);
  const tb::Event event = ParseEvent(points[0]);
  EXPECT_EQ(event.wall_time(), kReceiveTime);
  EXPECT_EQ(event.summary().value(0).simple_value(), 0.9f);
}

// Scalar columns' events are encoded by hand, by the engine's
// ScalarEventEncoder: scalar_event_test checks its bytes against protobuf for
// every kind of step, wall time, value and tag. Here, that the converter gives
// it each point's tag, style, step, value and wall time (0 standing for the
// receive time, and a receive time of 0 left out of the Event): the events
// are the very bytes protobuf writes for the Event built from the engine's
// scalar values.
TEST_F(RecordConverterTest, ScalarColumnsEventsAreByteIdenticalToProtobuf) {
  const std::vector<std::string> tags = {"a", std::string(256, 'y'), "\xc3\xa9t\xc3\xa9"};
  const std::vector<int64_t> steps = {0, -1, 128, std::numeric_limits<int64_t>::max()};
  const std::vector<float> values = {-0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f,
                                     -std::numeric_limits<float>::infinity()};
  const std::vector<double> walls = {0.0, -0.0, 1700000000.125};
  for (const v1::ScalarStyle style : {v1::SCALAR_STYLE_TENSOR, v1::SCALAR_STYLE_SIMPLE_VALUE}) {
    // A receive time of 0 leaves wall_time out of the Event, as protobuf does.
    for (const double receive_time : {kReceiveTime, 0.0}) {
      v1::Record record;
      v1::ScalarColumns* columns = record.mutable_scalars();
      columns->set_style(style);
      for (const std::string& tag : tags) columns->add_tags()->set_tag(tag);
      const size_t points = steps.size() * values.size();
      for (size_t i = 0; i < points; ++i) {
        columns->add_tag_index(static_cast<uint32_t>(i % tags.size()));
        columns->add_steps(steps[i % steps.size()]);
        columns->add_values(values[(i / steps.size()) % values.size()]);
        columns->add_wall_times(walls[i % walls.size()]);
      }
      absl::StatusOr<Converted> out = converter_.Convert(record, receive_time);
      ASSERT_TRUE(out.ok()) << out.status();
      const std::vector<PointOut> events = Points(*out);
      ASSERT_EQ(events.size(), points);
      for (size_t i = 0; i < points; ++i) {
        const std::string& tag = tags[i % tags.size()];
        const float value = columns->values(static_cast<int>(i));
        tb::Event expected;
        const double wall = walls[i % walls.size()];
        expected.set_wall_time(wall == 0 ? receive_time : wall);
        expected.set_step(steps[i % steps.size()]);
        *expected.mutable_summary()->add_value() = style == v1::SCALAR_STYLE_TENSOR
                                                       ? ScalarValue(tag, value)
                                                       : SimpleScalarValue(tag, value);
        EXPECT_EQ(events[i].tag, tag);
        EXPECT_EQ(events[i].step, expected.step());
        ASSERT_EQ(events[i].event, expected.SerializeAsString())
            << "point " << i << " style " << style << " receive_time " << receive_time;
      }
    }
  }
}

// Scalar columns of `points` points rotating over `tags`, steps from `step0`.
v1::Record ColumnsRecord(size_t points, const std::vector<std::string>& tags, int64_t step0) {
  v1::Record record;
  v1::ScalarColumns* columns = record.mutable_scalars();
  for (const std::string& tag : tags) columns->add_tags()->set_tag(tag);
  for (size_t i = 0; i < points; ++i) {
    columns->add_tag_index(static_cast<uint32_t>(i % tags.size()));
    columns->add_steps(step0 + static_cast<int64_t>(i));
    columns->add_values(static_cast<float>(i) / 3);
  }
  return record;
}

// `out`, converted from ColumnsRecord's `record` at kReceiveTime, holds the
// very bytes protobuf writes for each point, and nothing more.
void ExpectProtobufBytes(const v1::Record& record, const Converted& out) {
  const std::vector<PointOut> events = Points(out);
  const v1::ScalarColumns& columns = record.scalars();
  ASSERT_EQ(events.size(), static_cast<size_t>(columns.values_size()));
  size_t bytes = 0;
  for (int i = 0; i < columns.values_size(); ++i) {
    tb::Event expected;
    expected.set_wall_time(kReceiveTime);
    expected.set_step(columns.steps(i));
    *expected.mutable_summary()->add_value() =
        ScalarValue(columns.tags(static_cast<int>(columns.tag_index(i))).tag(), columns.values(i));
    ASSERT_EQ(events[static_cast<size_t>(i)].event, expected.SerializeAsString()) << "point " << i;
    bytes += events[static_cast<size_t>(i)].event.size();
  }
  EXPECT_EQ(out.packed.bytes.size(), bytes);
}

// A batch's packed buffers go to a spare list when it is freed, and the next
// batch encodes over the old, unzeroed bytes (packed_events.h): its events are
// still exactly protobuf's, whether it is smaller or larger than the one
// before or takes other tags (other event sizes).
TEST_F(RecordConverterTest, ScalarColumnsOverARecycledBufferAreByteIdenticalToProtobuf) {
  const v1::Record large = ColumnsRecord(40000, {"long/tag/of/the/first/batch", "b"}, 1 << 20);
  const char* recycled = nullptr;
  {
    absl::StatusOr<Converted> out = converter_.Convert(large, kReceiveTime);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectProtobufBytes(large, *out);
    recycled = out->packed.bytes.data();
  }
  // Fewer points with shorter steps (a spare is taken when it is not much
  // larger than needed): the old bytes lie past the new.
  const v1::Record smaller = ColumnsRecord(36000, {"long/tag/of/the/other/batch"}, 0);
  {
    absl::StatusOr<Converted> out = converter_.Convert(smaller, kReceiveTime);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectProtobufBytes(smaller, *out);
    EXPECT_EQ(out->packed.bytes.data(), recycled) << "the freed batch's buffer was not reused";
  }
  // More points than the recycled buffer holds: it grows.
  const v1::Record larger = ColumnsRecord(90000, {"d", "a/longer/tag/than/before/with/more/bytes"}, 7);
  absl::StatusOr<Converted> out = converter_.Convert(larger, kReceiveTime);
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectProtobufBytes(larger, *out);
}

// A backlog: several batches converted before any is written (a client
// sending faster than the run's writer) hold several sets of buffers at once.
// Once they are freed, as many next batches of about their size each get one
// of them back rather than fresh memory to fault in (packed_events.h).
TEST_F(RecordConverterTest, ABacklogOfBatchesGetsItsBuffersBackOnceFreed) {
  constexpr size_t kBacklog = 6;  // <= kMaxSpares, and 6 x ~4 MiB < the total bound
  static_assert(kBacklog <= PackedEvents::kMaxSpares);
  std::vector<const char*> freed;
  {
    std::vector<Converted> backlog;
    for (size_t b = 0; b < kBacklog; ++b) {
      absl::StatusOr<Converted> out =
          converter_.Convert(ColumnsRecord(50000, {absl::StrCat("backlog/", b)}, 0), kReceiveTime);
      ASSERT_TRUE(out.ok()) << out.status();
      freed.push_back(out->packed.bytes.data());
      backlog.push_back(*std::move(out));
    }
  }
  std::vector<Converted> next;
  size_t reused = 0;
  for (size_t b = 0; b < kBacklog; ++b) {
    const v1::Record record = ColumnsRecord(49000, {absl::StrCat("next/", b)}, 0);
    absl::StatusOr<Converted> out = converter_.Convert(record, kReceiveTime);
    ASSERT_TRUE(out.ok()) << out.status();
    ExpectProtobufBytes(record, *out);
    if (std::find(freed.begin(), freed.end(), out->packed.bytes.data()) != freed.end()) ++reused;
    next.push_back(*std::move(out));
  }
  EXPECT_EQ(reused, kBacklog) << "a freed batch's buffers were not reused";
}

// The spares are freed once none was taken or given back for kIdleRelease
// (the daemon's flush tick calls ReleaseIdleSpares), so an idle daemon does
// not keep up to 64 MiB of them; not before.
TEST_F(RecordConverterTest, SparesAreFreedOnceIdle) {
  {
    absl::StatusOr<Converted> out =
        converter_.Convert(ColumnsRecord(50000, {"idle/a"}, 0), kReceiveTime);
    ASSERT_TRUE(out.ok()) << out.status();
  }  // freed: its buffers are spares now
  const size_t held = PackedEvents::SpareBytes();
  ASSERT_GT(held, size_t{1} << 20);
  EXPECT_EQ(PackedEvents::ReleaseIdleSpares(absl::Now()), 0u);  // just used
  EXPECT_EQ(PackedEvents::SpareBytes(), held);
  EXPECT_EQ(PackedEvents::ReleaseIdleSpares(absl::Now() + PackedEvents::kIdleRelease +
                                            absl::Seconds(1)),
            held);
  EXPECT_EQ(PackedEvents::SpareBytes(), 0u);
  // The next batch allocates afresh, and its buffers are kept again.
  {
    absl::StatusOr<Converted> out =
        converter_.Convert(ColumnsRecord(50000, {"idle/b"}, 0), kReceiveTime);
    ASSERT_TRUE(out.ok()) << out.status();
  }
  EXPECT_GT(PackedEvents::SpareBytes(), size_t{1} << 20);
}

// The daemon converts on several worker threads and frees batches on the
// runs' threads: the spare list is shared. Threads converting and freeing
// batches of different sizes at once each get their own bytes (run under
// TSan by scripts/sanitize.sh).
TEST_F(RecordConverterTest, ScalarColumnsConvertedOnManyThreadsAtOnceKeepTheirBytes) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int round = 0; round < 6; ++round) {
        const v1::Record record = ColumnsRecord(
            static_cast<size_t>(8000 + 3000 * ((t + round) % 4)),
            {absl::StrCat("thread", t, "/round", round), std::string(static_cast<size_t>(t + 1), 'x')},
            round * 1000);
        absl::StatusOr<Converted> out = converter_.Convert(record, kReceiveTime);
        ASSERT_TRUE(out.ok()) << out.status();
        ExpectProtobufBytes(record, *out);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// Columns that refer to a stream dictionary (convert/stream_tags.h) give the
// very events of the same columns with a batch-local dictionary.
TEST_F(RecordConverterTest, StreamTagIdsGiveTheEventsOfBatchLocalDictionaries) {
  auto tags = std::make_shared<convert::StreamTags>(limits_);
  v1::WriteRequest definitions;
  definitions.set_stream_tags_first_id(3);
  definitions.add_stream_tags()->set_tag("loss");
  v1::ColumnTag* eval = definitions.add_stream_tags();
  eval->set_tag("acc");
  eval->set_subrun("eval");
  size_t added = 0;
  ASSERT_TRUE(tags->Define(definitions, 1, &added).ok());
  EXPECT_GT(added, 0u);
  EXPECT_EQ(added, tags->held_bytes());
  // Defining the same again adds nothing.
  ASSERT_TRUE(tags->Define(definitions, 2, &added).ok());
  EXPECT_EQ(added, 0u);
  const convert::StreamTagsRef ref{tags, 2};

  for (const v1::ScalarStyle style : {v1::SCALAR_STYLE_TENSOR, v1::SCALAR_STYLE_SIMPLE_VALUE}) {
    v1::Record by_id;
    v1::Record local;
    v1::ScalarColumns* ids = by_id.mutable_scalars();
    ids->set_stream_tag_ids(true);
    v1::ScalarColumns* columns = local.mutable_scalars();
    columns->add_tags()->set_tag("loss");
    *columns->add_tags() = *eval;
    for (v1::ScalarColumns* c : {ids, columns}) {
      c->set_style(style);
      for (int i = 0; i < 6; ++i) {
        c->add_steps(i);
        c->add_values(0.5f * static_cast<float>(i));
        c->add_wall_times(i % 2 == 0 ? 0.0 : 1700000000.5);
      }
    }
    for (uint32_t index : {0u, 1u, 1u, 0u, 0u, 1u}) {
      columns->add_tag_index(index);
      ids->add_tag_index(index + 3);
    }
    absl::StatusOr<Converted> out = converter_.Convert(by_id, kReceiveTime, "", &ref);
    ASSERT_TRUE(out.ok()) << out.status();
    const std::vector<PointOut> expected = Points(Ok(local));
    const std::vector<PointOut> points = Points(*out);
    ASSERT_EQ(points.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(points[i].event, expected[i].event) << i;
      EXPECT_EQ(points[i].subrun, expected[i].subrun) << i;
      EXPECT_EQ(points[i].tag, expected[i].tag) << i;
      EXPECT_EQ(points[i].step, expected[i].step) << i;
    }
    // One series per tag used, in order of first use.
    ASSERT_EQ(out->packed.series.size(), 2u);
    EXPECT_EQ(out->packed.series[0].tag, "loss");
    EXPECT_EQ(out->packed.series[1].subrun, "eval");
  }
}

TEST_F(RecordConverterTest, StreamTagIdsMustBeDefinedUpToTheBatch) {
  auto tags = std::make_shared<convert::StreamTags>(limits_);
  v1::WriteRequest definitions;
  definitions.add_stream_tags()->set_tag("early");
  size_t added = 0;
  ASSERT_TRUE(tags->Define(definitions, 1, &added).ok());
  definitions.set_stream_tags_first_id(1);
  definitions.mutable_stream_tags(0)->set_tag("late");
  definitions.add_stream_tags()->set_tag("bad\n");
  ASSERT_TRUE(tags->Define(definitions, 5, &added).ok());  // a bad name is the record's error

  v1::Record record;
  v1::ScalarColumns* columns = record.mutable_scalars();
  columns->set_stream_tag_ids(true);
  columns->add_tag_index(0);
  columns->add_tag_index(1);
  columns->add_steps(1);
  columns->add_steps(1);
  columns->add_values(1.0f);
  columns->add_values(1.0f);
  const auto convert = [&](const convert::StreamTagsRef* ref) {
    return converter_.Convert(record, kReceiveTime, "", ref);
  };
  // Message 4 precedes the definition of id 1 (message 5).
  const convert::StreamTagsRef before{tags, 4};
  absl::StatusOr<Converted> out = convert(&before);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("tag_index[1]: stream tag id 1 is not defined"),
            std::string::npos)
      << out.status();
  const convert::StreamTagsRef at{tags, 5};
  EXPECT_TRUE(convert(&at).ok());
  EXPECT_FALSE(convert(nullptr).ok());  // no dictionary: every id undefined

  columns->set_tag_index(1, 2);
  out = convert(&at);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("stream tag id 2"), std::string::npos) << out.status();
  EXPECT_NE(out.status().message().find("control character"), std::string::npos) << out.status();

  columns->set_tag_index(1, 70000);  // past the cap: never defined
  EXPECT_FALSE(convert(&at).ok());
  columns->set_tag_index(1, 0);
  columns->add_tags()->set_tag("x");  // both forms at once
  out = convert(&at);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("must be empty with stream_tag_ids"), std::string::npos);
}

TEST_F(RecordConverterTest, ScalarColumnsRejectInconsistentColumns) {
  const auto make = [] {
    v1::Record record;
    v1::ScalarColumns* columns = record.mutable_scalars();
    columns->add_tags()->set_tag("a");
    columns->add_tag_index(0);
    columns->add_steps(1);
    columns->add_values(1.0f);
    return record;
  };
  v1::Record lengths = make();
  lengths.mutable_scalars()->add_steps(2);
  ExpectInvalid(lengths, {"scalars", "steps", "must agree"});

  v1::Record index = make();
  index.mutable_scalars()->set_tag_index(0, 1);
  ExpectInvalid(index, {"tag_index[0]", "out of range"});

  v1::Record tag = make();
  tag.mutable_scalars()->add_tags()->set_tag("bad\n");
  ExpectInvalid(tag, {"tags[1]", "control character"});

  v1::Record subrun = make();
  subrun.mutable_scalars()->mutable_tags(0)->set_subrun("..");
  ExpectInvalid(subrun, {"tags[0]", "subrun", "not allowed"});

  v1::Record walls = make();
  walls.mutable_scalars()->add_wall_times(1.0);
  walls.mutable_scalars()->add_wall_times(2.0);
  ExpectInvalid(walls, {"wall_times", "one per point"});

  v1::Record nan_wall = make();
  nan_wall.mutable_scalars()->add_wall_times(std::nan(""));
  ExpectInvalid(nan_wall, {"wall_times[0]", "finite"});

  v1::Record style = make();
  style.mutable_scalars()->set_style(static_cast<v1::ScalarStyle>(3));
  ExpectInvalid(style, {"style", "unknown enum value 3"});
}

}  // namespace
}  // namespace tblog::daemon
