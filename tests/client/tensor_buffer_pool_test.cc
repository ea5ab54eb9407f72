// TensorBufferPool: which tensor buffers of an acknowledged batch it keeps
// (histogram values and pixel images of at least kMinBufferBytes, within its
// count and byte bounds) and which one Take hands out (the smallest that fits).
#include "tensor_buffer_pool.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>

namespace tblog {
namespace {

constexpr size_t kBig = TensorBufferPool::kMinBufferBytes;

void AddHistogram(v1::WriteRequest* request, size_t bytes) {
  request->add_records()->mutable_histogram()->mutable_values()->set_data(std::string(bytes, 'h'));
}

void AddImage(v1::WriteRequest* request, size_t bytes) {
  request->add_records()->mutable_image()->mutable_pixels()->set_data(std::string(bytes, 'p'));
}

TEST(TensorBufferPoolTest, KeepsLargeHistogramAndPixelBuffersOnly) {
  TensorBufferPool pool(size_t{64} << 20);
  v1::WriteRequest request;
  AddHistogram(&request, kBig);
  AddImage(&request, 2 * kBig);
  AddHistogram(&request, kBig / 2);  // too small to keep
  request.add_records()->mutable_image()->set_encoded(std::string(4 * kBig, 'e'));  // no tensor
  pool.Reclaim(request);

  EXPECT_TRUE(pool.Take(kBig / 2).capacity() >= kBig);  // the smallest kept one fits
  EXPECT_GE(pool.Take(kBig).capacity(), 2 * kBig);
  EXPECT_TRUE(pool.Take(1).empty());  // nothing left
}

TEST(TensorBufferPoolTest, TakeHandsOutTheSmallestBufferThatFits) {
  TensorBufferPool pool(size_t{64} << 20);
  v1::WriteRequest request;
  AddHistogram(&request, 4 * kBig);
  AddHistogram(&request, 2 * kBig);
  AddHistogram(&request, 3 * kBig);
  pool.Reclaim(request);

  const std::string middle = pool.Take(2 * kBig + 1);
  EXPECT_GE(middle.capacity(), 3 * kBig);
  EXPECT_LT(middle.capacity(), 4 * kBig);
  EXPECT_TRUE(pool.Take(5 * kBig).empty());  // none is large enough
  EXPECT_LT(pool.Take(kBig).capacity(), 3 * kBig);
  EXPECT_GE(pool.Take(kBig).capacity(), 4 * kBig);
}

TEST(TensorBufferPoolTest, KeepsAtMostMaxBuffersAndMaxBytes) {
  TensorBufferPool by_count(size_t{64} << 20);
  v1::WriteRequest many;
  for (size_t i = 0; i < TensorBufferPool::kMaxBuffers + 2; ++i) AddHistogram(&many, kBig);
  by_count.Reclaim(many);
  size_t taken = 0;
  while (!by_count.Take(kBig).empty()) ++taken;
  EXPECT_EQ(taken, TensorBufferPool::kMaxBuffers);

  TensorBufferPool by_bytes(3 * kBig);
  v1::WriteRequest large;
  AddHistogram(&large, 2 * kBig);
  AddHistogram(&large, 2 * kBig);  // would pass max_bytes: freed with its batch
  by_bytes.Reclaim(large);
  EXPECT_FALSE(by_bytes.Take(kBig).empty());
  EXPECT_TRUE(by_bytes.Take(kBig).empty());
}

}  // namespace
}  // namespace tblog
