#include "engine/histogram/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/histogram/parallel.h"
#include "golden_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

// A tensor that owns its bytes and shape, viewed as a TensorView.
struct OwnedTensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::string bytes;

  TensorView view() const { return TensorView{dtype, shape, bytes}; }
};

template <typename T>
OwnedTensor MakeTensor(const std::vector<T>& values, DType dtype) {
  OwnedTensor t;
  t.dtype = dtype;
  t.shape = {static_cast<int64_t>(values.size())};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

OwnedTensor FloatTensor(const std::vector<float>& values) {
  return MakeTensor(values, DType::kFloat32);
}

using Row = std::array<double, 3>;

std::vector<Row> Rows(const tb::Summary::Value& value) {
  const std::string& content = value.tensor().tensor_content();
  std::vector<Row> rows(content.size() / sizeof(Row));
  if (!rows.empty()) std::memcpy(rows.data(), content.data(), rows.size() * sizeof(Row));
  return rows;
}

HistogramSummary BuildUniform(const OwnedTensor& t, HistogramBuilderOptions options = {}) {
  auto built = HistogramBuilder(options).Uniform("h", t.view());
  EXPECT_TRUE(built.ok()) << built.status();
  return built.ok() ? *std::move(built) : HistogramSummary{};
}

HistogramSummary BuildExponential(const OwnedTensor& t, HistogramBuilderOptions options = {}) {
  auto built = HistogramBuilder(options).Exponential("h", t.view());
  EXPECT_TRUE(built.ok()) << built.status();
  return built.ok() ? *std::move(built) : HistogramSummary{};
}

// Distance in units in the last place between two finite doubles of one sign.
int64_t UlpDistance(double a, double b) {
  if (a == b) return 0;
  int64_t ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  if ((ia < 0) != (ib < 0)) return std::numeric_limits<int64_t>::max();
  return ia > ib ? ia - ib : ib - ia;
}

// ---- Uniform layout ----------------------------------------------------------

// TensorBoard's histogram_pb algorithm, written plainly on doubles.
std::vector<Row> ReferenceUniform(const std::vector<double>& data, int k) {
  std::vector<Row> rows(static_cast<size_t>(k), Row{0, 0, 0});
  if (k == 0 || data.empty()) return rows;
  const double min = *std::min_element(data.begin(), data.end());
  const double max = *std::max_element(data.begin(), data.end());
  if (min == max) {
    for (Row& row : rows) row = {min, min, 0};
    rows.back()[2] = static_cast<double>(data.size());
    return rows;
  }
  const double width = (max - min) / k;
  for (double x : data) {
    const int64_t index =
        std::min<int64_t>(static_cast<int64_t>(std::floor((x - min) / width)), k - 1);
    rows[static_cast<size_t>(index)][2] += 1;
  }
  for (int i = 0; i < k; ++i) {
    rows[static_cast<size_t>(i)][0] = i * width + min;
    rows[static_cast<size_t>(i)][1] = i + 1 == k ? max : (i + 1) * width + min;
  }
  return rows;
}

TEST(HistogramUniformTest, LayoutAndMetadata) {
  const HistogramSummary h = BuildUniform(FloatTensor({1, 2, 3, 4}));
  EXPECT_EQ(h.value.tag(), "h");
  EXPECT_EQ(h.value.tensor().dtype(), tb::DT_DOUBLE);
  ASSERT_EQ(h.value.tensor().tensor_shape().dim_size(), 2);
  EXPECT_EQ(h.value.tensor().tensor_shape().dim(0).size(), 30);
  EXPECT_EQ(h.value.tensor().tensor_shape().dim(1).size(), 3);
  EXPECT_EQ(h.value.tensor().tensor_content().size(), 30u * 3 * 8);
  EXPECT_EQ(h.value.metadata().plugin_data().plugin_name(), "histograms");
  tb::HistogramPluginData content;
  ASSERT_TRUE(content.ParseFromString(h.value.metadata().plugin_data().content()));
  EXPECT_EQ(content.version(), 0);
  EXPECT_EQ(h.value.metadata().data_class(), tb::DATA_CLASS_TENSOR);
  EXPECT_EQ(h.nonfinite_count, 0);
}

TEST(HistogramUniformTest, MatchesReferenceOnRandomData) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(3.0f, 2.0f);
  for (int k : {1, 2, 7, 30, 257}) {
    std::vector<float> values(5000);
    for (float& v : values) v = normal(rng);
    values[10] = values[11];  // duplicates and exact extremes are covered too
    const HistogramSummary h = BuildUniform(FloatTensor(values), {.bucket_count = k});
    const std::vector<Row> expected = ReferenceUniform({values.begin(), values.end()}, k);
    const std::vector<Row> rows = Rows(h.value);
    ASSERT_EQ(rows.size(), expected.size()) << "k " << k;
    double total = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i], expected[i]) << "k " << k << " row " << i;
      total += rows[i][2];
    }
    EXPECT_EQ(total, 5000) << "k " << k;
  }
}

// Values on and next to every bucket boundary, where a guessed index is most
// likely to be off by one.
TEST(HistogramUniformTest, MatchesReferenceAtBucketBoundaries) {
  for (int k : {3, 7, 30, 1000}) {
    const double min = -1.3, max = 2.9, width = (max - min) / k;
    std::vector<double> values = {min, max};
    for (int i = 1; i < k; ++i) {
      const double boundary = i * width + min;
      values.push_back(boundary);
      values.push_back(std::nextafter(boundary, -DBL_MAX));
      values.push_back(std::nextafter(boundary, DBL_MAX));
    }
    const HistogramSummary h =
        BuildUniform(MakeTensor(values, DType::kFloat64), {.bucket_count = k});
    EXPECT_EQ(Rows(h.value), ReferenceUniform(values, k)) << "k " << k;
  }
}

// max - min overflows a double: counted by division instead, nothing lost.
TEST(HistogramUniformTest, HugeRangeStillCountsEveryValue) {
  const HistogramSummary h =
      BuildUniform(MakeTensor(std::vector<double>{-DBL_MAX, 0.0, DBL_MAX}, DType::kFloat64));
  double total = 0;
  for (const Row& row : Rows(h.value)) total += row[2];
  EXPECT_EQ(total, 3);
}

TEST(HistogramUniformTest, EmptyInputGivesZeroRows) {
  const HistogramSummary h = BuildUniform(FloatTensor({}));
  EXPECT_EQ(h.value.tensor().tensor_shape().dim(0).size(), 30);
  EXPECT_EQ(h.value.tensor().tensor_content(), std::string(30 * 3 * 8, '\0'));
}

TEST(HistogramUniformTest, ZeroBucketsGivesEmptyTensor) {
  const HistogramSummary h = BuildUniform(FloatTensor({1, 2, 3}), {.bucket_count = 0});
  ASSERT_EQ(h.value.tensor().tensor_shape().dim_size(), 2);
  EXPECT_EQ(h.value.tensor().tensor_shape().dim(0).size(), 0);
  EXPECT_EQ(h.value.tensor().tensor_shape().dim(1).size(), 3);
  EXPECT_TRUE(h.value.tensor().tensor_content().empty());
}

TEST(HistogramUniformTest, AllEqualPutsEverythingInTheLastBucket) {
  const HistogramSummary h = BuildUniform(FloatTensor({-2.5f, -2.5f, -2.5f}), {.bucket_count = 4});
  const std::vector<Row> rows = Rows(h.value);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (Row{-2.5, -2.5, 0}));
  EXPECT_EQ(rows[2], (Row{-2.5, -2.5, 0}));
  EXPECT_EQ(rows[3], (Row{-2.5, -2.5, 3}));
}

TEST(HistogramUniformTest, BucketCountBounds) {
  const OwnedTensor t = FloatTensor({1, 2});
  for (int k : {-1, HistogramBuilder::kMaxBucketCount + 1}) {
    const auto built = HistogramBuilder({.bucket_count = k}).Uniform("w", t.view());
    EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_NE(built.status().message().find("bucket count"), std::string::npos) << built.status();
  }
  const auto largest =
      HistogramBuilder({.bucket_count = HistogramBuilder::kMaxBucketCount}).Uniform("w", t.view());
  ASSERT_TRUE(largest.ok()) << largest.status();
  EXPECT_EQ(largest->value.tensor().tensor_shape().dim(0).size(),
            HistogramBuilder::kMaxBucketCount);
}

TEST(HistogramTest, InvalidViewIsRejectedWithTheReason) {
  OwnedTensor t = FloatTensor({1, 2, 3});
  t.bytes.pop_back();
  for (bool uniform : {true, false}) {
    const HistogramBuilder builder;
    const auto built =
        uniform ? builder.Uniform("w", t.view()) : builder.Exponential("w", t.view());
    EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(built.status().message().find("histogram 'w'"), std::string::npos) << built.status();
    EXPECT_NE(built.status().message().find("bytes"), std::string::npos) << built.status();
  }
}

// ---- Non-finite policy --------------------------------------------------------

TEST(HistogramTest, NonFiniteValuesAreSkippedAndCounted) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> finite = {0.5f, -1.0f, 3.0f, 2.0f, 7.5f};
  const std::vector<float> mixed = {0.5f, nan, -1.0f, inf, 3.0f, 2.0f, -inf, 7.5f};
  const HistogramSummary uniform = BuildUniform(FloatTensor(mixed));
  EXPECT_EQ(uniform.nonfinite_count, 3);
  EXPECT_EQ(uniform.value.SerializeAsString(),
            BuildUniform(FloatTensor(finite)).value.SerializeAsString());
  const HistogramSummary exponential = BuildExponential(FloatTensor(mixed));
  EXPECT_EQ(exponential.nonfinite_count, 3);
  EXPECT_EQ(exponential.value.SerializeAsString(),
            BuildExponential(FloatTensor(finite)).value.SerializeAsString());
  EXPECT_EQ(exponential.value.histo().num(), 5);
}

TEST(HistogramTest, OnlyNonFiniteValuesCountAsEmpty) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const HistogramSummary h = BuildUniform(FloatTensor({nan, nan}));
  EXPECT_EQ(h.nonfinite_count, 2);
  EXPECT_EQ(h.value.tensor().tensor_content(), std::string(30 * 3 * 8, '\0'));
}

TEST(HistogramTest, RejectPolicyNamesCountAndFirstIndex) {
  // Non-finite values in two different chunks, found by different tasks.
  std::vector<float> values(4 * HistogramBuilder::kChunkElements, 1.0f);
  values[200000] = std::numeric_limits<float>::infinity();
  values[70000] = std::numeric_limits<float>::quiet_NaN();
  const OwnedTensor t = FloatTensor(values);
  ThreadParallelRunner runner(3);
  const HistogramBuilder builder({.non_finite = NonFinitePolicy::kReject, .runner = &runner});
  for (bool uniform : {true, false}) {
    const auto built =
        uniform ? builder.Uniform("w", t.view()) : builder.Exponential("w", t.view());
    EXPECT_EQ(built.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(built.status().message().find("2 non-finite"), std::string::npos) << built.status();
    EXPECT_NE(built.status().message().find("index 70000"), std::string::npos) << built.status();
  }
}

// ---- Dtypes ---------------------------------------------------------------------

uint16_t HalfBitsOfSmallInteger(int v) {  // exact for |v| < 2048
  if (v == 0) return 0;
  const uint16_t sign = v < 0 ? 0x8000 : 0;
  int a = std::abs(v), e = 0;
  while ((a >> (e + 1)) != 0) ++e;
  const int mantissa = (a << 10 >> e) & 0x3ff;
  return static_cast<uint16_t>(sign | ((e + 15) << 10) | mantissa);
}

uint16_t Bfloat16BitsOf(float v) {  // exact for values with <= 8 significant bits
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

template <typename T>
OwnedTensor Converted(const std::vector<int>& values, DType dtype) {
  std::vector<T> out(values.begin(), values.end());
  return MakeTensor(out, dtype);
}

TEST(HistogramTest, EveryDtypeGivesTheSameResultAsFloat64) {
  std::vector<int> signed_values, unsigned_values;
  for (int i = 0; i < 300; ++i) {
    signed_values.push_back((i * 37) % 101 - 50);
    unsigned_values.push_back((i * 37) % 101);
  }
  const auto check = [](const std::vector<int>& values, const OwnedTensor& t) {
    const OwnedTensor reference = Converted<double>(values, DType::kFloat64);
    EXPECT_EQ(BuildUniform(t).value.SerializeAsString(),
              BuildUniform(reference).value.SerializeAsString())
        << DTypeName(t.dtype);
    EXPECT_EQ(BuildExponential(t).value.SerializeAsString(),
              BuildExponential(reference).value.SerializeAsString())
        << DTypeName(t.dtype);
  };
  check(signed_values, Converted<float>(signed_values, DType::kFloat32));
  check(signed_values, Converted<int8_t>(signed_values, DType::kInt8));
  check(signed_values, Converted<int16_t>(signed_values, DType::kInt16));
  check(signed_values, Converted<int32_t>(signed_values, DType::kInt32));
  check(signed_values, Converted<int64_t>(signed_values, DType::kInt64));
  check(unsigned_values, Converted<uint8_t>(unsigned_values, DType::kUint8));
  check(unsigned_values, Converted<uint16_t>(unsigned_values, DType::kUint16));
  check(unsigned_values, Converted<uint32_t>(unsigned_values, DType::kUint32));
  check(unsigned_values, Converted<uint64_t>(unsigned_values, DType::kUint64));
  std::vector<uint16_t> half, bfloat;
  for (int v : signed_values) {
    half.push_back(HalfBitsOfSmallInteger(v));
    bfloat.push_back(Bfloat16BitsOf(static_cast<float>(v)));
  }
  check(signed_values, MakeTensor(half, DType::kFloat16));
  check(signed_values, MakeTensor(bfloat, DType::kBfloat16));
  std::vector<int> bits;
  std::vector<uint8_t> bools;
  for (int i = 0; i < 50; ++i) {
    bits.push_back(i % 3 == 0 ? 1 : 0);
    bools.push_back(i % 3 == 0 ? 7 : 0);  // any non-zero byte is true
  }
  check(bits, MakeTensor(bools, DType::kBool));
}

// ---- Threads ---------------------------------------------------------------------

TEST(HistogramTest, ResultDoesNotDependOnThreadCount) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(1'000'003);
  for (float& v : values) v = normal(rng) * 1e3f;
  values[12345] = std::numeric_limits<float>::quiet_NaN();
  const OwnedTensor t = FloatTensor(values);
  const HistogramSummary uniform = BuildUniform(t);
  const HistogramSummary exponential = BuildExponential(t);
  EXPECT_EQ(uniform.nonfinite_count, 1);
  double total = 0;
  for (const Row& row : Rows(uniform.value)) total += row[2];
  EXPECT_EQ(total, 1'000'002);
  for (int threads : {1, 2, 3, 8}) {
    ThreadParallelRunner runner(threads);
    EXPECT_EQ(BuildUniform(t, {.runner = &runner}).value.SerializeAsString(),
              uniform.value.SerializeAsString())
        << threads << " threads";
    EXPECT_EQ(BuildExponential(t, {.runner = &runner}).value.SerializeAsString(),
              exponential.value.SerializeAsString())
        << threads << " threads";
  }
}

// ---- Fast kernels against the portable code -------------------------------------

// Builds with the portable scalar code for the lifetime of the object.
class PortableKernelsOnly {
 public:
  PortableKernelsOnly() { histogram_internal::UsePortableKernelsOnly(true); }
  ~PortableKernelsOnly() { histogram_internal::UsePortableKernelsOnly(false); }
  PortableKernelsOnly(const PortableKernelsOnly&) = delete;
  PortableKernelsOnly& operator=(const PortableKernelsOnly&) = delete;
};

// Float32 inputs that stress the kernels: many distributions, values on and
// next to bucket boundaries, subnormals, signed zeros, huge and tiny ranges.
std::vector<std::pair<std::string, std::vector<float>>> KernelInputs() {
  std::mt19937 rng(2024);
  std::vector<std::pair<std::string, std::vector<float>>> inputs;
  const auto add = [&](std::string name, int64_t n, auto draw) {
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = draw();
    inputs.emplace_back(std::move(name), std::move(values));
  };
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<uint32_t> bits;
  const auto random_finite = [&] {  // any finite float, uniform over bit patterns
    for (;;) {
      const float v = std::bit_cast<float>(bits(rng));
      if (std::isfinite(v)) return v;
    }
  };
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 1023, 1024, 1025, 5000, 140000}) {
    add("normal/" + std::to_string(n), n, [&] { return normal(rng); });
  }
  add("uniform", 3000, [&] { return unit(rng); });
  add("shifted_narrow", 3000, [&] { return 1e6f + unit(rng) * 0.5f; });
  add("lognormal_wide", 3000, [&] { return std::exp(normal(rng) * 20.0f); });
  add("random_bits", 3000, random_finite);
  add("random_bits_half_range", 3000, [&] { return random_finite() * 0.49f; });
  add("subnormals", 3000, [&] {
    return std::bit_cast<float>(bits(rng) % 0x00800000u | (bits(rng) & 0x80000000u));
  });
  add("signed_zeros", 3000, [&] { return bits(rng) % 2 ? 0.0f : -0.0f; });
  add("zeros_and_ones", 3000, [&] { return std::array{0.0f, -0.0f, 1.0f}[bits(rng) % 3]; });
  add("relu", 3000, [&] { return std::max(normal(rng), 0.0f); });
  add("negative_relu", 3000, [&] { return std::min(normal(rng), -0.0f); });
  add("adjacent_floats", 3000, [&] { return std::nextafter(1.0f, 2.0f * (bits(rng) % 2)); });
  add("few_ulps", 3000, [&] { return 1.0f + static_cast<float>(bits(rng) % 5) * FLT_EPSILON; });
  add("near_float_max", 3000, [&] { return unit(rng) * FLT_MAX; });
  add("all_equal", 100, [] { return 2.5f; });
  add("edge_of_exponential_table", 3000, [&] {
    const std::span<const double> edges = HistogramBuilder::ExponentialEdges();
    const float e = static_cast<float>(edges[bits(rng) % edges.size()]);
    return std::array{e, std::nextafter(e, -FLT_MAX), std::nextafter(e, FLT_MAX)}[bits(rng) % 3];
  });
  // Values on and next to the bucket boundaries of k = 30 and 7.
  for (int k : {7, 30}) {
    std::vector<float> values = {-1.3f, 2.9f};
    const double min = -1.3f, max = 2.9f, width = (max - min) / k;
    for (int i = 1; i < k; ++i) {
      const float boundary = static_cast<float>(i * width + min);
      for (float v : {boundary, std::nextafter(boundary, -FLT_MAX),
                      std::nextafter(boundary, FLT_MAX)}) {
        values.push_back(v);
      }
    }
    inputs.emplace_back("boundaries/" + std::to_string(k), values);
  }
  return inputs;
}

TEST(HistogramKernelTest, FastKernelsGiveTheSameBytesAsThePortableCode) {
  if (!histogram_internal::Avx2KernelsAvailable()) {
    GTEST_SKIP() << "no AVX2 on this machine: only the portable code runs";
  }
  ThreadParallelRunner runner(3);
  for (const auto& [name, values] : KernelInputs()) {
    const OwnedTensor t = FloatTensor(values);
    for (int k : {1, 2, 3, 30, 31, 100, 10000}) {
      for (ParallelRunner* threads : {static_cast<ParallelRunner*>(nullptr),
                                      static_cast<ParallelRunner*>(&runner)}) {
        const HistogramBuilderOptions options{.bucket_count = k, .runner = threads};
        const std::string fast = BuildUniform(t, options).value.SerializeAsString();
        std::string portable;
        {
          const PortableKernelsOnly scope;
          portable = BuildUniform(t, options).value.SerializeAsString();
        }
        EXPECT_EQ(fast, portable) << name << " k " << k << (threads ? " threaded" : "");
      }
      // The plain double reference, where the range is finite.
      const std::vector<double> wide(values.begin(), values.end());
      const auto [lo, hi] = std::minmax_element(wide.begin(), wide.end());
      if (std::isfinite(*hi - *lo)) {
        EXPECT_EQ(Rows(BuildUniform(t, {.bucket_count = k}).value), ReferenceUniform(wide, k))
            << name << " k " << k;
      }
    }
    for (ParallelRunner* threads :
         {static_cast<ParallelRunner*>(nullptr), static_cast<ParallelRunner*>(&runner)}) {
      const std::string fast = BuildExponential(t, {.runner = threads}).value.SerializeAsString();
      std::string portable;
      {
        const PortableKernelsOnly scope;
        portable = BuildExponential(t, {.runner = threads}).value.SerializeAsString();
      }
      EXPECT_EQ(fast, portable) << name << (threads ? " threaded" : "");
    }
  }
}

// Non-finite values take the kernels' fallback; the bytes must not change.
TEST(HistogramKernelTest, NonFiniteValuesGiveTheSameBytesAsThePortableCode) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(200000);
  for (float& v : values) v = normal(rng);
  for (size_t i : {size_t{3}, size_t{1500}, size_t{70001}, size_t{199999}}) {
    values[i] = i % 2 ? std::numeric_limits<float>::infinity()
                      : std::numeric_limits<float>::quiet_NaN();
  }
  const OwnedTensor t = FloatTensor(values);
  ThreadParallelRunner runner(2);
  const HistogramBuilderOptions options{.runner = &runner};
  const HistogramSummary fast_uniform = BuildUniform(t, options);
  const HistogramSummary fast_exponential = BuildExponential(t, options);
  const PortableKernelsOnly scope;
  const HistogramSummary uniform = BuildUniform(t, options);
  const HistogramSummary exponential = BuildExponential(t, options);
  EXPECT_EQ(fast_uniform.value.SerializeAsString(), uniform.value.SerializeAsString());
  EXPECT_EQ(fast_exponential.value.SerializeAsString(), exponential.value.SerializeAsString());
  EXPECT_EQ(fast_uniform.nonfinite_count, 4);
  EXPECT_EQ(fast_exponential.nonfinite_count, 4);
}

// Every exponential edge as a float, and its neighbours: the float32
// kernel's key table must settle each with its one comparison.
TEST(HistogramKernelTest, EveryExponentialEdgeGivesTheBinOfThePortableCode) {
  std::vector<float> values;
  for (double e : HistogramBuilder::ExponentialEdges()) {
    const float f = static_cast<float>(e);
    for (float v : {f, std::nextafter(f, -FLT_MAX), std::nextafter(f, FLT_MAX)}) {
      values.push_back(v);
    }
  }
  // One value per histogram, so that each is checked on its own; eight
  // copies of it, as the vector code takes eight at a time.
  for (float v : values) {
    const OwnedTensor t = FloatTensor(std::vector<float>(8, v));
    const std::string fast = BuildExponential(t).value.SerializeAsString();
    const PortableKernelsOnly scope;
    EXPECT_EQ(fast, BuildExponential(t).value.SerializeAsString()) << v;
  }
}

// Whole chunks go through the kernel that sums two to four of them side by
// side; a short last chunk and odd ones through the one-chunk kernel. Every
// split (no runner: one task; 2 and 3 threads: tasks of one to four chunks)
// must give the bytes of the portable code, non-finite values included: the
// side-by-side kernel meets its blocks out of index order, and must still
// name the first non-finite value.
TEST(HistogramKernelTest, ChunksSummedSideBySideGiveTheBytesOfThePortableCode) {
  if (!histogram_internal::Avx2KernelsAvailable()) {
    GTEST_SKIP() << "no AVX2 on this machine: only the portable code runs";
  }
  constexpr int64_t kChunk = HistogramBuilder::kChunkElements;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  ThreadParallelRunner two(2), three(3);
  for (int64_t n : {2 * kChunk, 3 * kChunk, 4 * kChunk + 1000, 9 * kChunk - 5, 17 * kChunk}) {
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = normal(rng);
    std::vector<float> with_nonfinite = values;
    // A NaN early in the last whole chunk, found before the Inf late in
    // chunk 0 when the chunks go side by side.
    const int64_t last_whole = n / kChunk - 1;
    with_nonfinite[static_cast<size_t>(last_whole * kChunk + 10)] =
        std::numeric_limits<float>::quiet_NaN();
    with_nonfinite[static_cast<size_t>(kChunk - 100)] = std::numeric_limits<float>::infinity();
    for (ParallelRunner* threads : {static_cast<ParallelRunner*>(nullptr),
                                    static_cast<ParallelRunner*>(&two),
                                    static_cast<ParallelRunner*>(&three)}) {
      for (const std::vector<float>* input : {&values, &with_nonfinite}) {
        const OwnedTensor t = FloatTensor(*input);
        const std::string what = "n " + std::to_string(n) + (threads ? " threaded" : "") +
                                 (input == &values ? "" : " non-finite");
        const HistogramSummary fast = BuildExponential(t, {.runner = threads});
        const auto fast_rejected =
            HistogramBuilder({.non_finite = NonFinitePolicy::kReject, .runner = threads})
                .Exponential("h", t.view());
        const PortableKernelsOnly scope;
        const HistogramSummary portable = BuildExponential(t, {.runner = threads});
        EXPECT_EQ(fast.value.SerializeAsString(), portable.value.SerializeAsString()) << what;
        EXPECT_EQ(fast.nonfinite_count, portable.nonfinite_count) << what;
        if (input != &values) {
          EXPECT_EQ(fast.nonfinite_count, 2) << what;
          EXPECT_NE(fast_rejected.status().message().find(
                        "the first at flat index " + std::to_string(kChunk - 100)),
                    std::string::npos)
              << what << ": " << fast_rejected.status();
        }
      }
    }
  }
}

// ---- Range hints (a shared-memory client's claimed min and max) ---------------

// Uniform with a range hint, which must give the bytes of Uniform without one.
HistogramSummary BuildUniformWithHint(const OwnedTensor& t, HistogramRangeHint hint,
                                      HistogramBuilderOptions options = {}) {
  auto built = HistogramBuilder(options).Uniform("h", t.view(), hint);
  EXPECT_TRUE(built.ok()) << built.status();
  return built.ok() ? *std::move(built) : HistogramSummary{};
}

// Checks that `hint` changes nothing of the result, and whether it held.
void ExpectHintGivesTheSameResult(const OwnedTensor& t, HistogramRangeHint hint, bool held,
                                  const std::string& what, HistogramBuilderOptions options = {}) {
  const HistogramSummary plain = BuildUniform(t, options);
  const HistogramSummary hinted = BuildUniformWithHint(t, hint, options);
  EXPECT_EQ(hinted.value.SerializeAsString(), plain.value.SerializeAsString()) << what;
  EXPECT_EQ(hinted.nonfinite_count, plain.nonfinite_count) << what;
  EXPECT_FALSE(plain.range_hint_held) << what;
  if (histogram_internal::Avx2KernelsAvailable()) {
    EXPECT_EQ(hinted.range_hint_held, held) << what << " [" << hint.min << ", " << hint.max << "]";
  }
}

// The range of finite floats as the client computes it (any zero sign).
HistogramRangeHint TrueRange(const std::vector<float>& values) {
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  return {*lo, *hi};
}

TEST(HistogramRangeHintTest, RightHintCountsInOnePassToTheSameBytes) {
  ThreadParallelRunner runner(3);
  for (const auto& [name, values] : KernelInputs()) {
    const OwnedTensor t = FloatTensor(values);
    const HistogramRangeHint hint = TrueRange(values);
    for (int k : {1, 2, 30, 10000}) {
      for (ParallelRunner* threads : {static_cast<ParallelRunner*>(nullptr),
                                      static_cast<ParallelRunner*>(&runner)}) {
        // Held when there is a width to count in and the kernels' float
        // buckets can be made (FloatUniformBuckets::Make: a range within
        // FLT_MAX, a scale that is a normal float).
        const double scale = k / (hint.max - hint.min);
        const bool held = hint.min < hint.max && hint.max - hint.min <= FLT_MAX &&
                          scale >= FLT_MIN && scale <= FLT_MAX;
        ExpectHintGivesTheSameResult(t, hint, held,
                                     name + " k " + std::to_string(k) + (threads ? " threaded" : ""),
                                     {.bucket_count = k, .runner = threads});
      }
    }
  }
}

TEST(HistogramRangeHintTest, ZeroSignsAreTheDataNotTheHint) {
  // The first zero of the data decides the sign of a zero min or max, as
  // without a hint; a hint with the other sign is numerically right, holds,
  // and changes no byte.
  for (const std::vector<float>& values :
       {std::vector<float>{0.0f, -0.0f, 1.0f, 2.0f}, std::vector<float>{-0.0f, 0.0f, 1.0f},
        std::vector<float>{-1.0f, 0.0f, -0.0f}, std::vector<float>{-2.0f, -0.0f, 0.0f}}) {
    const OwnedTensor t = FloatTensor(values);
    const HistogramRangeHint hint = TrueRange(values);
    for (const HistogramRangeHint& signed_hint :
         {hint, HistogramRangeHint{-hint.min == 0 ? -hint.min : hint.min,
                                   hint.max == 0 ? -hint.max : hint.max}}) {
      ExpectHintGivesTheSameResult(t, signed_hint, true, "zeros", {.bucket_count = 3});
    }
  }
}

// n standard normal floats.
std::vector<float> NormalFloats(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(n);
  for (float& v : values) v = normal(rng);
  return values;
}

TEST(HistogramRangeHintTest, WrongHintsGiveTheExactHistogram) {
  const std::vector<float> values = NormalFloats(300000, 13);
  const OwnedTensor t = FloatTensor(values);
  const HistogramRangeHint right = TrueRange(values);
  const auto below = [](double v) { return std::nextafter(static_cast<float>(v), -FLT_MAX); };
  const auto above = [](double v) { return std::nextafter(static_cast<float>(v), FLT_MAX); };
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::pair<std::string, HistogramRangeHint>> wrong = {
      {"too wide below", {below(right.min), right.max}},
      {"too wide above", {right.min, above(right.max)}},
      {"much too wide", {right.min - 100, right.max + 100}},
      {"too narrow below", {above(right.min), right.max}},
      {"too narrow above", {right.min, below(right.max)}},
      {"much too narrow", {-0.5, 0.5}},
      {"between two floats", {right.min + (above(right.min) - right.min) / 2, right.max}},
      {"swapped", {right.max, right.min}},
      {"empty", {right.min, right.min}},
      {"NaN", {nan, right.max}},
      {"infinite", {-inf, inf}},
      {"wider than a float", {-1e300, 1e300}},
      {"zeros", {0, 0}},
  };
  ThreadParallelRunner runner(2);
  for (const auto& [what, hint] : wrong) {
    ExpectHintGivesTheSameResult(t, hint, false, what);
    ExpectHintGivesTheSameResult(t, hint, false, what + " threaded", {.runner = &runner});
  }
  ExpectHintGivesTheSameResult(t, right, true, "right", {.runner = &runner});
}

TEST(HistogramRangeHintTest, NonFiniteValuesBreakTheHint) {
  const std::vector<float> values = NormalFloats(100000, 17);
  const HistogramRangeHint finite_range = TrueRange(values);
  ThreadParallelRunner runner(2);
  for (const float odd : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    for (size_t at : {size_t{0}, size_t{12345}, values.size() - 1}) {  // vector part and tail
      std::vector<float> odd_values = values;
      odd_values[at] = odd;
      const OwnedTensor t = FloatTensor(odd_values);
      const std::string what = std::to_string(odd) + " at " + std::to_string(at);
      ExpectHintGivesTheSameResult(t, finite_range, false, what);
      ExpectHintGivesTheSameResult(t, finite_range, false, what + " threaded",
                                   {.runner = &runner});
      // Under kReject the error is the one without a hint.
      const HistogramBuilder reject({.non_finite = NonFinitePolicy::kReject});
      EXPECT_EQ(reject.Uniform("h", t.view(), finite_range).status(),
                reject.Uniform("h", t.view()).status())
          << what;
    }
  }
}

TEST(HistogramRangeHintTest, EmptyAllEqualOtherDtypesAndZeroBucketsIgnoreIt) {
  ExpectHintGivesTheSameResult(FloatTensor({}), {0, 1}, false, "empty");
  ExpectHintGivesTheSameResult(FloatTensor({2.5f, 2.5f, 2.5f}), {2.5, 2.5}, false, "all equal");
  ExpectHintGivesTheSameResult(FloatTensor({2.5f, 2.5f, 2.5f}), {1.5, 2.5}, false,
                               "all equal, hint too wide");
  ExpectHintGivesTheSameResult(FloatTensor({1.0f, 2.0f}), {1, 2}, false, "no buckets",
                               {.bucket_count = 0});
  ExpectHintGivesTheSameResult(MakeTensor(std::vector<double>{1.0, 2.0, 3.0}, DType::kFloat64),
                               {1, 3}, false, "float64");
  ExpectHintGivesTheSameResult(FloatTensor({1.0f, 2.0f, 3.0f}), {1, 3}, true, "three floats");
  // The portable code has no checked one-pass count: it makes both passes.
  const OwnedTensor wave = FloatTensor(NormalFloats(5000, 3));
  const HistogramSummary fast = BuildUniformWithHint(wave, TrueRange(NormalFloats(5000, 3)));
  const PortableKernelsOnly scope;
  const HistogramSummary portable =
      BuildUniformWithHint(wave, TrueRange(NormalFloats(5000, 3)));
  EXPECT_FALSE(portable.range_hint_held);
  EXPECT_EQ(portable.value.SerializeAsString(), fast.value.SerializeAsString());
}

// ---- Exponential layout -------------------------------------------------------------

TEST(HistogramExponentialTest, EdgesAreTensorFlowDefaults) {
  const std::span<const double> edges = HistogramBuilder::ExponentialEdges();
  ASSERT_EQ(edges.size(), 1549u);
  EXPECT_EQ(edges[774], 0.0);
  EXPECT_EQ(edges[775], 1e-12);
  EXPECT_EQ(edges[776], 1e-12 * 1.1);
  EXPECT_LT(edges.back(), 1e20);
  EXPECT_GE(edges.back() * 1.1, 1e20);
  for (size_t i = 0; i + 1 < edges.size(); ++i) {
    EXPECT_LT(edges[i], edges[i + 1]) << i;
    EXPECT_EQ(edges[i], -edges[edges.size() - 1 - i]) << i;
  }
}

// numpy.histogram over the edges, trimmed as torch's make_histogram trims.
void ExpectMatchesReferenceExponential(const std::vector<double>& data) {
  const std::span<const double> edges = HistogramBuilder::ExponentialEdges();
  std::vector<double> bins(edges.size() - 1);
  for (double x : data) {
    if (x < edges.front() || x > edges.back()) continue;
    size_t bin =
        static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), x) - edges.begin()) - 1;
    if (bin == bins.size()) --bin;  // x == last edge: the last bin is closed
    bins[bin] += 1;
  }
  size_t first = 0, last = bins.size() - 1;
  while (bins[first] == 0) ++first;
  while (bins[last] == 0) --last;
  std::vector<double> limits(edges.begin() + static_cast<std::ptrdiff_t>(first),
                             edges.begin() + static_cast<std::ptrdiff_t>(last) + 2);
  std::vector<double> counts = {0};
  counts.insert(counts.end(), bins.begin() + static_cast<std::ptrdiff_t>(first),
                bins.begin() + static_cast<std::ptrdiff_t>(last) + 1);

  const HistogramSummary h = BuildExponential(MakeTensor(data, DType::kFloat64));
  EXPECT_EQ(std::vector<double>(h.value.histo().bucket_limit().begin(),
                                h.value.histo().bucket_limit().end()),
            limits);
  EXPECT_EQ(std::vector<double>(h.value.histo().bucket().begin(), h.value.histo().bucket().end()),
            counts);
}

TEST(HistogramExponentialTest, BinsMatchNumpySemanticsAtAndAroundEdges) {
  const std::span<const double> edges = HistogramBuilder::ExponentialEdges();
  std::vector<double> data;
  for (double e : edges) {
    data.push_back(e);
    data.push_back(std::nextafter(e, -DBL_MAX));
    data.push_back(std::nextafter(e, DBL_MAX));
  }
  data.push_back(-0.0);
  data.push_back(1e-300);
  data.push_back(-1e-300);
  data.push_back(1e30);  // outside the edges: in num and max, in no bucket
  ExpectMatchesReferenceExponential(data);
  // One value at a time, so the trimming is exercised at every position.
  std::mt19937 rng(3);
  std::uniform_int_distribution<size_t> pick(0, data.size() - 2);
  for (int i = 0; i < 200; ++i) ExpectMatchesReferenceExponential({data[pick(rng)]});
}

TEST(HistogramExponentialTest, SummaryStatistics) {
  const HistogramSummary h = BuildExponential(FloatTensor({1.0f, -2.0f, 4.0f, 1e30f}));
  EXPECT_EQ(h.value.histo().min(), -2.0);
  EXPECT_EQ(h.value.histo().max(), static_cast<double>(1e30f));
  EXPECT_EQ(h.value.histo().num(), 4);
  EXPECT_EQ(h.value.histo().sum(), 1.0 - 2.0 + 4.0 + static_cast<double>(1e30f));
  double bucketed = 0;
  for (double c : h.value.histo().bucket()) bucketed += c;
  EXPECT_EQ(bucketed, 3);  // 1e30 is beyond the last edge
  EXPECT_FALSE(h.value.has_metadata());
}

TEST(HistogramExponentialTest, EmptyInputGivesOneEmptyBucket) {
  const HistogramSummary h = BuildExponential(FloatTensor({}));
  EXPECT_EQ(h.value.histo().num(), 0);
  EXPECT_EQ(h.value.histo().min(), 0);
  EXPECT_EQ(h.value.histo().max(), 0);
  ASSERT_EQ(h.value.histo().bucket_limit_size(), 1);
  EXPECT_EQ(h.value.histo().bucket_limit(0), DBL_MAX);
  EXPECT_EQ(h.value.histo().bucket(0), 0);
}

// ---- Golden files ------------------------------------------------------------------

// histogram_v1: torch add_histogram(bins='tensorflow'). Byte-equal: torch
// sums in double in index order (numpy's sum and dot), as we do within a
// chunk, and these inputs fit in one chunk.
TEST(HistogramGoldenTest, ExponentialMatchesHistogramV1ByteForByte) {
  const auto events = ReadGoldenEvents("histogram_v1");
  const struct {
    const char* tag;
    const char* file;
    int64_t step;
  } cases[] = {{"weights/normal", "normal_10000.f32", 0}, {"weights/mixed", "mixed_2050.f32", 1}};
  for (const auto& c : cases) {
    const tb::Summary::Value* golden = FindValue(events, c.tag, c.step);
    ASSERT_NE(golden, nullptr) << c.tag;
    const auto built =
        HistogramBuilder().Exponential(c.tag, FloatTensor(ReadGoldenArray<float>(c.file)).view());
    ASSERT_TRUE(built.ok()) << built.status();
    EXPECT_EQ(built->value.SerializeAsString(), golden->SerializeAsString()) << c.tag;
    EXPECT_EQ(built->value.histo().bucket_size(), golden->histo().bucket_size()) << c.tag;
  }
}

// histogram_v2: TensorBoard's histogram_pb, 30 buckets. TensorBoard leaves
// data_class unset where we set TENSOR; with it cleared, the Value must be
// byte-equal except that edges computed by numpy may differ by 1 ulp, so the
// rows are compared with that tolerance and everything else exactly.
TEST(HistogramGoldenTest, UniformMatchesHistogramV2) {
  const auto events = ReadGoldenEvents("histogram_v2");
  const struct {
    const char* tag;
    const char* file;  // nullptr: empty input
    int64_t step;
  } cases[] = {{"weights/normal", "normal_10000.f32", 0},
               {"weights/mixed", "mixed_2050.f32", 1},
               {"weights/same", "same_100.f32", 2},
               {"weights/empty", nullptr, 3}};
  for (const auto& c : cases) {
    const tb::Summary::Value* golden = FindValue(events, c.tag, c.step);
    ASSERT_NE(golden, nullptr) << c.tag;
    const std::vector<float> input = c.file ? ReadGoldenArray<float>(c.file) : std::vector<float>{};
    const auto built = HistogramBuilder().Uniform(c.tag, FloatTensor(input).view());
    ASSERT_TRUE(built.ok()) << built.status();
    tb::Summary::Value ours = built->value;
    ExpectAndClearDataClass(tb::DATA_CLASS_TENSOR, &ours);

    const std::vector<Row> our_rows = Rows(ours);
    const std::vector<Row> golden_rows = Rows(*golden);
    ASSERT_EQ(our_rows.size(), golden_rows.size()) << c.tag;
    for (size_t i = 0; i < our_rows.size(); ++i) {
      EXPECT_LE(UlpDistance(our_rows[i][0], golden_rows[i][0]), 1) << c.tag << " row " << i;
      EXPECT_LE(UlpDistance(our_rows[i][1], golden_rows[i][1]), 1) << c.tag << " row " << i;
      EXPECT_EQ(our_rows[i][2], golden_rows[i][2]) << c.tag << " row " << i;
    }
    tb::Summary::Value ours_without_rows = ours, golden_without_rows = *golden;
    ours_without_rows.mutable_tensor()->clear_tensor_content();
    golden_without_rows.mutable_tensor()->clear_tensor_content();
    EXPECT_EQ(ours_without_rows.SerializeAsString(), golden_without_rows.SerializeAsString())
        << c.tag;
    // In practice the edges agree exactly too (same formula, no FMA).
    EXPECT_EQ(ours.SerializeAsString(), golden->SerializeAsString()) << c.tag;
  }
}

}  // namespace
}  // namespace tblog
