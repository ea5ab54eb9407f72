// Every reference file in TBLOG_GOLDEN_DIR, written by TensorBoard's and
// PyTorch's writers, decodes fully with our reader.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "engine/io/event_reader.h"
#include "golden_util.h"

namespace tblog {
namespace {

TEST(GoldenReadTest, EveryGoldenFileDecodesFully) {
  auto runs = ListRuns(TBLOG_GOLDEN_DIR);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(runs->size(), 19u);
  for (const RunFiles& run : *runs) {
    ASSERT_EQ(run.files.size(), 1u) << run.name;
    auto reader = EventFileReader::Open(run.files[0]);
    ASSERT_TRUE(reader.ok()) << reader.status();
    tb::Event event;
    int events = 0;
    EventFileReader::State state;
    while ((state = (*reader)->Next(&event)) == EventFileReader::State::kEvent) {
      if (events == 0) {
        EXPECT_EQ(event.file_version(), "brain.Event:2") << run.name;
      } else if (run.name != "torch_hparams/trial") {
        // add_hparams stamps its events with time.time(), not base + step.
        EXPECT_DOUBLE_EQ(event.wall_time(), 1700000000.0 + static_cast<double>(event.step()))
            << run.name << " event " << events;
      }
      ++events;
    }
    EXPECT_EQ(state, EventFileReader::State::kEnd) << (*reader)->error();
    // torch_hparams and torch_embedding hold only the file_version event.
    EXPECT_GE(events, 1) << run.name;
    // The test helper agrees.
    EXPECT_EQ(ReadEventFile(run.files[0]).size(), static_cast<size_t>(events)) << run.name;
  }
}

TEST(GoldenReadTest, HelpersFindKnownValues) {
  const std::vector<tb::Event> events = ReadGoldenEvents("scalars_v1");
  ASSERT_FALSE(events.empty());
  const tb::Summary::Value* loss = FindValue(events, "loss", 1);
  ASSERT_NE(loss, nullptr);
  EXPECT_FLOAT_EQ(loss->simple_value(), 0.5f);  // 1/(step+1)
  EXPECT_EQ(FindValue(events, "no such tag", 1), nullptr);
  EXPECT_EQ(ReadGoldenArray<float>("normal_10000.f32").size(), 10000u);
  EXPECT_EQ(ReadGoldenArray<uint8_t>("gradient_32x48x3.u8").size(), 32u * 48u * 3u);
}

}  // namespace
}  // namespace tblog
