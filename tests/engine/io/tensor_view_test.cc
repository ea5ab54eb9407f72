#include "engine/io/tensor_view.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace tblog {
namespace {

TEST(TensorViewTest, HalfConversionCoversNormalSubnormalAndSpecials) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
}

TEST(TensorViewTest, Bfloat16IsTheHighHalfOfAFloat) {
  EXPECT_EQ(Bfloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bfloat16ToFloat(0xc0a0), -5.0f);
}

TEST(TensorViewTest, ValidateChecksSizeAgainstShape) {
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> shape = {2, 3};
  TensorView t{DType::kFloat32, shape,
               std::string_view(reinterpret_cast<const char*>(v.data()), 24)};
  EXPECT_TRUE(t.Validate().ok());
  EXPECT_EQ(t.num_elements(), 6);
  EXPECT_EQ(t.ElementAsDouble(5), 6.0);
  t.data = t.data.substr(0, 20);
  EXPECT_EQ(t.Validate().code(), absl::StatusCode::kInvalidArgument);
  std::vector<int64_t> negative = {-1, 3};
  t.shape = negative;
  EXPECT_NE(t.Validate().message().find("negative"), std::string_view::npos);
  std::vector<int64_t> huge = {std::numeric_limits<int64_t>::max(), 4};
  t.shape = huge;
  EXPECT_NE(t.Validate().message().find("overflow"), std::string_view::npos);
}

TEST(TensorViewTest, RejectsUnknownDType) {
  EXPECT_FALSE(IsValidDType(7));  // DT_STRING is not a numeric input
  EXPECT_FALSE(IsValidDType(0));
  EXPECT_TRUE(IsValidDType(19));
  TensorView t{static_cast<DType>(99), {}, ""};
  EXPECT_EQ(t.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorViewTest, IntegerTypesConvert) {
  int64_t big = -(int64_t{1} << 40);
  TensorView t{DType::kInt64, {}, std::string_view(reinterpret_cast<const char*>(&big), 8)};
  EXPECT_EQ(t.ElementAsDouble(0), -1099511627776.0);
  uint8_t b = 200;
  TensorView u{DType::kUint8, {}, std::string_view(reinterpret_cast<const char*>(&b), 1)};
  EXPECT_EQ(u.ElementAsDouble(0), 200.0);
}

}  // namespace
}  // namespace tblog
