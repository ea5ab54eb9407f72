// Image records (convert/summaries.h) through RecordConverter::Convert.
#include "daemon/record_converter.h"

#include <limits>
#include <string>
#include <vector>

#include "convert_test_util.h"
#include "engine/media/png.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tblog::daemon {
namespace {

using ::testing::HasSubstr;

TEST_F(RecordConverterTest, ImagePixelsTensorStyle) {
  v1::Record record = Base("sample");
  std::vector<uint8_t> pixels(4 * 5 * 3, 128);
  *record.mutable_image()->mutable_pixels() = MakeTensor(v1::DTYPE_UINT8, {4, 5, 3}, pixels);
  const tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.metadata().plugin_data().plugin_name(), "images");
  ASSERT_EQ(value.tensor().string_val_size(), 3);
  EXPECT_EQ(value.tensor().string_val(0), "5");
  EXPECT_EQ(value.tensor().string_val(1), "4");
  absl::StatusOr<RawImage> decoded = DecodePng(value.tensor().string_val(2));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->channels, 3);
  EXPECT_EQ(decoded->pixels, pixels);
}

TEST_F(RecordConverterTest, ImageLayoutsAndSummaryImageStyle) {
  // CHW floats in [0,1], one image.
  v1::Record chw = Base("chw");
  *chw.mutable_image()->mutable_pixels() = Floats({1, 2, 3}, {0, 0.5f, 1, 1, 0.5f, 0});
  chw.mutable_image()->set_layout(v1::PIXEL_LAYOUT_CHW);
  chw.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  tb::Summary::Value value = OnlyValue(Ok(chw));
  ASSERT_TRUE(value.has_image());
  EXPECT_EQ(value.image().height(), 2);
  EXPECT_EQ(value.image().width(), 3);
  EXPECT_EQ(value.image().colorspace(), 1);

  // A batch of 2 NCHW images, tiled side by side.
  v1::Record batch = Base("batch");
  *batch.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {2, 3, 4, 5}, std::vector<uint8_t>(2 * 3 * 4 * 5, 7));
  batch.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NCHW);
  batch.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  value = OnlyValue(Ok(batch));
  EXPECT_EQ(value.image().height(), 4);
  EXPECT_EQ(value.image().width(), 10);

  // The same batch NHWC in tensor style keeps max_outputs images.
  v1::Record nhwc = Base("nhwc");
  *nhwc.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {4, 2, 2, 1}, std::vector<uint8_t>(16, 9));
  nhwc.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  nhwc.mutable_image()->set_max_outputs(2);
  value = OnlyValue(Ok(nhwc));
  EXPECT_EQ(value.tensor().string_val_size(), 2 + 2);
}

TEST_F(RecordConverterTest, ImageEncodedPassesThrough) {
  RawImage raw{2, 3, 3, std::vector<uint8_t>(18, 200)};
  absl::StatusOr<std::string> png = EncodePng(raw);
  ASSERT_TRUE(png.ok());
  v1::Record record = Base("png");
  record.mutable_image()->set_encoded(*png);
  record.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  tb::Summary::Value value = OnlyValue(Ok(record));
  EXPECT_EQ(value.image().encoded_image_string(), *png);
  EXPECT_EQ(value.image().height(), 2);
  EXPECT_EQ(value.image().width(), 3);

  record.mutable_image()->set_style(v1::IMAGE_STYLE_TENSOR);
  value = OnlyValue(Ok(record));
  ASSERT_EQ(value.tensor().string_val_size(), 3);
  EXPECT_EQ(value.tensor().string_val(2), *png);
}

TEST_F(RecordConverterTest, ImageRejectsBadInput) {
  v1::Record nan = Base("img");
  *nan.mutable_image()->mutable_pixels() =
      Floats({1, 2}, {0.5f, std::numeric_limits<float>::quiet_NaN()});
  ExpectInvalid(nan, {"image \"img\"", "pixels"});

  v1::Record rank = Base("img");
  *rank.mutable_image()->mutable_pixels() = Floats({2, 2}, {0, 0, 0, 0});
  rank.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  ExpectInvalid(rank, {"pixels", "rank 2", "needs 4"});

  v1::Record dtype = Base("img");
  *dtype.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_INT32, {1, 1}, std::vector<int32_t>{1});
  ExpectInvalid(dtype, {"pixels", "dtype int32"});

  v1::Record gif = Base("img");
  gif.mutable_image()->set_encoded("GIF89a\x01\x00\x01\x00");
  ExpectInvalid(gif, {"encoded", "neither PNG nor JPEG"});

  v1::Record none = Base("img");
  none.mutable_image();
  ExpectInvalid(none, {"source", "neither pixels nor encoded"});

  v1::Record layout = Base("img");
  *layout.mutable_image()->mutable_pixels() = Floats({1, 1}, {0});
  layout.mutable_image()->set_layout(static_cast<v1::PixelLayout>(9));
  ExpectInvalid(layout, {"layout", "unknown enum value 9"});

  // Empty dims are refused by the engine, never divided by.
  for (v1::ImageStyle style : {v1::IMAGE_STYLE_TENSOR, v1::IMAGE_STYLE_SUMMARY_IMAGE}) {
    v1::Record zero = Base("img");
    *zero.mutable_image()->mutable_pixels() = MakeTensor(v1::DTYPE_UINT8, {2, 0, 4, 5},
                                                         std::vector<uint8_t>{});
    zero.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NCHW);
    zero.mutable_image()->set_style(style);
    ExpectInvalid(zero, {"image \"img\"", "pixels"});
  }

  v1::Record grid = Base("img");
  *grid.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {2, 2, 3, 1}, std::vector<uint8_t>(12));
  grid.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  grid.mutable_image()->set_style(v1::IMAGE_STYLE_SUMMARY_IMAGE);
  Limits tight;
  tight.max_image_pixels = 8;
  const RecordConverter tight_converter(tight, nullptr);
  absl::StatusOr<Converted> tiled = tight_converter.Convert(grid, kReceiveTime);
  ASSERT_FALSE(tiled.ok());
  EXPECT_THAT(std::string(tiled.status().message()), HasSubstr("tiled grid would have 12 pixels"));

  Limits small;
  small.max_image_pixels = 10;
  small.max_images_per_record = 2;
  const RecordConverter strict(small, nullptr);
  v1::Record large = Base("img");
  *large.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {4, 4}, std::vector<uint8_t>(16));
  absl::StatusOr<Converted> out = strict.Convert(large, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("16 pixels is more than the limit"));
  v1::Record many = Base("img");
  *many.mutable_image()->mutable_pixels() =
      MakeTensor(v1::DTYPE_UINT8, {3, 1, 1, 1}, std::vector<uint8_t>(3));
  many.mutable_image()->set_layout(v1::PIXEL_LAYOUT_NHWC);
  out = strict.Convert(many, kReceiveTime);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("batch of 3 images"));
}

}  // namespace
}  // namespace tblog::daemon
