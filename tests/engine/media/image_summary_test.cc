#include "engine/media/image_summary.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "golden_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

TensorView U8View(const std::vector<uint8_t>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kUint8, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size())};
}
TensorView F32View(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kFloat32, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size() * 4)};
}

RawImage DecodeOrDie(const std::string& png) {
  absl::StatusOr<RawImage> image = DecodePng(png);
  EXPECT_TRUE(image.ok()) << image.status();
  return image.ok() ? *image : RawImage{};
}

// Golden comparison: PNG bytes by decoded pixels, every other field exact.
void ExpectSameV1Image(tb::Summary::Value ours, tb::Summary::Value golden) {
  const RawImage ours_pixels = DecodeOrDie(ours.image().encoded_image_string());
  const RawImage golden_pixels = DecodeOrDie(golden.image().encoded_image_string());
  EXPECT_EQ(ours_pixels.height, golden_pixels.height);
  EXPECT_EQ(ours_pixels.width, golden_pixels.width);
  EXPECT_EQ(ours_pixels.channels, golden_pixels.channels);
  EXPECT_EQ(ours_pixels.pixels, golden_pixels.pixels);
  ours.mutable_image()->clear_encoded_image_string();
  golden.mutable_image()->clear_encoded_image_string();
  EXPECT_EQ(ours.SerializeAsString(), golden.SerializeAsString())
      << "ours:\n" << ours.DebugString() << "golden:\n" << golden.DebugString();
}

TEST(ImageSummaryTest, MatchesGoldenImageV1) {
  const std::vector<uint8_t> pixels = ReadGoldenArray<uint8_t>("gradient_32x48x3.u8");
  absl::StatusOr<tb::Summary::Value> value =
      MakeImageSummaryV1("samples/gradient", U8View(pixels, {32, 48, 3}), ImageLayout::kHWC);
  ASSERT_TRUE(value.ok()) << value.status();
  const auto events = ReadGoldenEvents("image_v1");
  const tb::Summary::Value* golden = FindValue(events, "samples/gradient", 0);
  ASSERT_NE(golden, nullptr);
  ExpectSameV1Image(*value, *golden);
}

TEST(ImageSummaryTest, MatchesGoldenImageV2ExceptTheExplicitDataClass) {
  const std::vector<uint8_t> pixels = ReadGoldenArray<uint8_t>("gradient_32x48x3.u8");
  absl::StatusOr<tb::Summary::Value> value =
      MakeImageSummaryV2("samples/gradient", U8View(pixels, {32, 48, 3}), ImageLayout::kHWC);
  ASSERT_TRUE(value.ok()) << value.status();
  const auto events = ReadGoldenEvents("image_v2");
  const tb::Summary::Value* found = FindValue(events, "samples/gradient", 0);
  ASSERT_NE(found, nullptr);
  tb::Summary::Value golden = *found;
  tb::Summary::Value ours = *value;
  // The golden file leaves data_class unset (loaders then infer it from the
  // plugin name); we set it, as tensorboard-format.md §3 recommends.
  EXPECT_EQ(ours.metadata().data_class(), tb::DATA_CLASS_BLOB_SEQUENCE);
  EXPECT_EQ(golden.metadata().data_class(), tb::DATA_CLASS_UNKNOWN);
  ours.mutable_metadata()->clear_data_class();
  ASSERT_EQ(ours.tensor().string_val_size(), 3);
  ASSERT_EQ(golden.tensor().string_val_size(), 3);
  EXPECT_EQ(DecodeOrDie(ours.tensor().string_val(2)).pixels,
            DecodeOrDie(golden.tensor().string_val(2)).pixels);
  ours.mutable_tensor()->mutable_string_val(2)->clear();
  golden.mutable_tensor()->mutable_string_val(2)->clear();
  EXPECT_EQ(ours.SerializeAsString(), golden.SerializeAsString())
      << "ours:\n" << ours.DebugString() << "golden:\n" << golden.DebugString();
}

TEST(ImageSummaryTest, MatchesGoldenTorchImagesGrid) {
  const std::vector<uint8_t> batch = ReadGoldenArray<uint8_t>("batch_4x3x16x16.u8");
  absl::StatusOr<tb::Summary::Value> value =
      MakeImageGridSummaryV1("batch", U8View(batch, {4, 3, 16, 16}), ImageLayout::kNCHW);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->image().width(), 64);  // four images side by side: min(4, 8) columns
  EXPECT_EQ(value->image().height(), 16);
  const auto events = ReadGoldenEvents("torch_images");
  const tb::Summary::Value* golden = FindValue(events, "batch", 0);
  ASSERT_NE(golden, nullptr);
  ExpectSameV1Image(*value, *golden);
}

TEST(ImageSummaryTest, FloatPixelsScaleLikeTorch) {
  // torch: (x * 255).clip(0, 255).astype(uint8): truncation, not rounding.
  const std::vector<float> pixels = {0.0f, 1.0f, 0.5f, 0.999f, -0.2f, 1.5f, 0.1f, 2.0f / 255};
  absl::StatusOr<std::vector<RawImage>> images =
      ImagesFromTensor(F32View(pixels, {2, 4}), ImageLayout::kHW);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->front().pixels, (std::vector<uint8_t>{0, 255, 127, 254, 0, 255, 25, 2}));
}

TEST(ImageSummaryTest, ChwAndHwcGiveTheSameImage) {
  // 2x3 RGB: HWC value at (y, x, c) = 10y + 3x + c.
  std::vector<uint8_t> hwc;
  std::vector<uint8_t> chw(18);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) {
        hwc.push_back(static_cast<uint8_t>(10 * y + 3 * x + c));
        chw[static_cast<size_t>(c * 6 + y * 3 + x)] = static_cast<uint8_t>(10 * y + 3 * x + c);
      }
  auto from_hwc = ImagesFromTensor(U8View(hwc, {2, 3, 3}), ImageLayout::kHWC);
  auto from_chw = ImagesFromTensor(U8View(chw, {3, 2, 3}), ImageLayout::kCHW);
  ASSERT_TRUE(from_hwc.ok() && from_chw.ok());
  EXPECT_EQ(from_hwc->front().pixels, hwc);
  EXPECT_EQ(from_chw->front().pixels, hwc);
}

TEST(ImageSummaryTest, GridPlacesImagesRowMajorWithZeroFill) {
  // Nine 1x1 gray images -> 8 columns, 2 rows; cells after the ninth are zero.
  std::vector<uint8_t> batch = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto images = ImagesFromTensor(U8View(batch, {9, 1, 1, 1}), ImageLayout::kNHWC);
  ASSERT_TRUE(images.ok());
  absl::StatusOr<RawImage> grid = TileImages(*images);
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->width, 8);
  EXPECT_EQ(grid->height, 2);
  EXPECT_EQ(grid->pixels,
            (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(ImageSummaryTest, V2KeepsAtMostMaxOutputs) {
  std::vector<uint8_t> batch(5 * 2 * 3 * 4);
  for (size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<uint8_t>(i);
  absl::StatusOr<tb::Summary::Value> value =
      MakeImageSummaryV2("b", U8View(batch, {5, 2, 3, 4}), ImageLayout::kNHWC);
  ASSERT_TRUE(value.ok()) << value.status();
  ASSERT_EQ(value->tensor().string_val_size(), 2 + kDefaultMaxImageOutputs);
  EXPECT_EQ(value->tensor().tensor_shape().dim(0).size(), 5);
  EXPECT_EQ(value->tensor().string_val(0), "3");  // width
  EXPECT_EQ(value->tensor().string_val(1), "2");  // height
  const RawImage second = DecodeOrDie(value->tensor().string_val(3));
  EXPECT_EQ(second.channels, 4);
  EXPECT_EQ(second.pixels, std::vector<uint8_t>(batch.begin() + 24, batch.begin() + 48));
  tb::ImagePluginData content;
  ASSERT_TRUE(content.ParseFromString(value->metadata().plugin_data().content()));
  EXPECT_EQ(content.version(), 0);
  EXPECT_EQ(value->metadata().plugin_data().plugin_name(), "images");
  EXPECT_FALSE(MakeImageSummaryV2("b", U8View(batch, {5, 2, 3, 4}), ImageLayout::kNHWC, 0).ok());
}

TEST(ImageSummaryTest, EncodedImagesPassThrough) {
  const RawImage image{4, 6, 2, std::vector<uint8_t>(48, 7)};
  const std::string png = *EncodePng(image);
  absl::StatusOr<tb::Summary::Value> v1 = MakeEncodedImageSummaryV1("e", png);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->image().encoded_image_string(), png);
  EXPECT_EQ(v1->image().height(), 4);
  EXPECT_EQ(v1->image().width(), 6);
  EXPECT_EQ(v1->image().colorspace(), 2);
  const std::vector<std::string_view> two = {png, png};
  absl::StatusOr<tb::Summary::Value> v2 = MakeEncodedImageSummaryV2("e", two);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->tensor().string_val_size(), 4);
  EXPECT_EQ(v2->tensor().string_val(3), png);
  EXPECT_FALSE(MakeEncodedImageSummaryV1("e", "plain text").ok());
  const std::string other = *EncodePng(RawImage{5, 6, 2, std::vector<uint8_t>(60, 1)});
  const std::vector<std::string_view> mixed = {png, other};
  EXPECT_FALSE(MakeEncodedImageSummaryV2("e", mixed).ok());
}

TEST(ImageSummaryTest, RejectsInvalidInput) {
  const std::vector<uint8_t> five_channels(2 * 2 * 5);
  EXPECT_EQ(MakeImageSummaryV1("t", U8View(five_channels, {2, 2, 5}), ImageLayout::kHWC)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<uint8_t> rgb(12);
  EXPECT_FALSE(MakeImageSummaryV1("t", U8View(rgb, {2, 2, 3}), ImageLayout::kNHWC).ok());
  EXPECT_FALSE(MakeImageSummaryV1("t", U8View(rgb, {2, 6}), ImageLayout::kHWC).ok());
  EXPECT_FALSE(MakeImageSummaryV1("", U8View(rgb, {2, 2, 3}), ImageLayout::kHWC).ok());
  EXPECT_FALSE(MakeImageSummaryV1("t", U8View(rgb, {2, 2, 4}), ImageLayout::kHWC).ok());  // size
  EXPECT_FALSE(MakeImageGridSummaryV1("t", U8View(rgb, {2, 2, 3}), ImageLayout::kHWC).ok());
  const std::vector<uint8_t> none;
  EXPECT_FALSE(MakeImageSummaryV2("t", U8View(none, {0, 2, 2, 3}), ImageLayout::kNHWC).ok());

  std::vector<float> with_nan = {0.1f, 0.2f, std::nanf(""), 0.4f};
  absl::StatusOr<tb::Summary::Value> nan =
      MakeImageSummaryV1("t", F32View(with_nan, {2, 2}), ImageLayout::kHW);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("index 2"), std::string_view::npos) << nan.status();

  const std::vector<int32_t> ints(4);
  const std::vector<int64_t> int_shape = {2, 2};  // outlives the view's span
  const TensorView int_view{DType::kInt32, int_shape,
                            std::string_view(reinterpret_cast<const char*>(ints.data()), 16)};
  EXPECT_FALSE(MakeImageSummaryV1("t", int_view, ImageLayout::kHW).ok());
}

}  // namespace
}  // namespace tblog
