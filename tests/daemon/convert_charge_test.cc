// The ByteBudget's view of a batch (daemon/convert/charge.h): the charge
// estimated before conversion covers what conversion leaves behind, and
// ConvertBatch drops each payload once converted, keeping what errors and
// metrics name.
#include "daemon/convert/charge.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "convert_test_util.h"
#include "daemon/request_builders.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

v1::Record NoiseImage(int height, int width) {
  std::mt19937 random(7);
  std::vector<uint8_t> pixels(static_cast<size_t>(height) * width * 4);
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(random());
  v1::Record record;
  record.set_tag("img");
  record.set_step(3);
  *record.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {height, width, 4}, pixels);
  return record;
}

TEST(ConvertChargeTest, TheEstimateCoversWhatAConvertedBatchHolds) {
  const Limits limits;
  const RecordConverter converter(limits, nullptr);
  for (v1::Record record : {NoiseImage(256, 256), tblog::testing::ScalarColumnRecord(10000, 0.5f)}) {
    v1::WriteRequest request;
    *request.add_records() = record;
    const size_t charge = convert::BatchCharge(request, request.ByteSizeLong());
    EXPECT_GT(charge, request.ByteSizeLong());
    const BatchConversion conversion = converter.ConvertBatch(request, kReceiveTime);
    ASSERT_EQ(conversion.converted.size(), 1u);
    ASSERT_TRUE(conversion.converted[0].ok()) << conversion.converted[0].status();
    // Settling only ever lowers a batch's charge for these kinds: the
    // estimate was an upper bound.
    EXPECT_LT(conversion.held_bytes, charge) << record.kind_case();
    EXPECT_GE(conversion.held_bytes, convert::HeldBytes(*conversion.converted[0]));
    size_t event_bytes = 0;
    for (const EventOut& event : conversion.converted[0]->events) event_bytes += event.event.size();
    EXPECT_GE(convert::HeldBytes(*conversion.converted[0]), event_bytes);
    if (record.has_image()) {  // one large event: its framed copy counts too
      EXPECT_GE(convert::HeldBytes(*conversion.converted[0]), 2 * event_bytes);
    }
  }
}

TEST(ConvertChargeTest, ConvertBatchDropsPayloadsButKeepsTagStepAndKind) {
  const Limits limits;
  const RecordConverter converter(limits, nullptr);
  v1::WriteRequest request;
  *request.add_records() = NoiseImage(64, 64);
  v1::Record bad = NoiseImage(8, 8);
  bad.mutable_image()->mutable_pixels()->set_dtype(v1::DTYPE_INT32);  // refused
  *request.add_records() = bad;
  const size_t before = request.ByteSizeLong();
  const BatchConversion conversion = converter.ConvertBatch(request, kReceiveTime);
  ASSERT_EQ(conversion.converted.size(), 2u);
  EXPECT_TRUE(conversion.converted[0].ok());
  EXPECT_FALSE(conversion.converted[1].ok());
  EXPECT_LT(request.ByteSizeLong(), before / 100);
  for (const v1::Record& record : request.records()) {
    EXPECT_EQ(record.tag(), "img");
    EXPECT_EQ(record.step(), 3);
    EXPECT_EQ(record.kind_case(), v1::Record::kImage);
    EXPECT_FALSE(record.image().has_pixels());
  }
}

TEST(ConvertChargeTest, ImageEstimateCountsPixelsPngAndEvent) {
  const v1::Record image = NoiseImage(512, 512);
  const size_t raw = 512u * 512u * 4u;
  EXPECT_GE(convert::ConversionEstimate(image), 3 * raw);
  // A shape that claims more elements than the data holds is bounded by it.
  v1::Record liar = image;
  liar.mutable_image()->mutable_pixels()->set_shape(0, int64_t{1} << 40);
  EXPECT_LE(convert::ConversionEstimate(liar), convert::ConversionEstimate(image));
}

}  // namespace
}  // namespace tblog::daemon
