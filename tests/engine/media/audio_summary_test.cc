#include "engine/media/audio_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "golden_util.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

TensorView F32View(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kFloat32, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size() * 4)};
}

std::vector<int16_t> WavSamples(const std::string& wav) {
  std::vector<int16_t> samples((wav.size() - 44) / 2);
  std::memcpy(samples.data(), wav.data() + 44, samples.size() * 2);
  return samples;
}

TEST(AudioSummaryTest, MatchesGoldenTorchAudioByteForByte) {
  const std::vector<float> sine = ReadGoldenArray<float>("sine_440hz_16k_1600.f32");
  ASSERT_EQ(sine.size(), 1600u);
  absl::StatusOr<tb::Summary::Value> value =
      MakeAudioSummaryV1("sine", F32View(sine, {1600}), 16000);
  ASSERT_TRUE(value.ok()) << value.status();
  const auto events = ReadGoldenEvents("torch_audio");
  const tb::Summary::Value* golden = FindValue(events, "sine", 0);
  ASSERT_NE(golden, nullptr);
  EXPECT_EQ(value->audio().encoded_audio_string().size(),
            golden->audio().encoded_audio_string().size());
  EXPECT_EQ(WavSamples(value->audio().encoded_audio_string()),
            WavSamples(golden->audio().encoded_audio_string()));
  EXPECT_EQ(value->SerializeAsString(), golden->SerializeAsString())
      << "ours:\n" << value->DebugString().substr(0, 400);
}

TEST(AudioSummaryTest, HeaderDescribesStereo) {
  const std::vector<float> stereo = {0.5f, -0.5f, 1.0f, -1.0f, 0.0f, 0.25f};
  absl::StatusOr<std::string> wav = EncodeWav(F32View(stereo, {3, 2}), 44100);
  ASSERT_TRUE(wav.ok()) << wav.status();
  ASSERT_EQ(wav->size(), 44u + 12u);
  EXPECT_EQ(wav->substr(0, 4), "RIFF");
  EXPECT_EQ(wav->substr(8, 8), "WAVEfmt ");
  EXPECT_EQ(wav->substr(36, 4), "data");
  uint16_t channels;
  uint32_t rate;
  uint32_t byte_rate;
  uint32_t riff_size;
  std::memcpy(&riff_size, wav->data() + 4, 4);
  std::memcpy(&channels, wav->data() + 22, 2);
  std::memcpy(&rate, wav->data() + 24, 4);
  std::memcpy(&byte_rate, wav->data() + 28, 4);
  EXPECT_EQ(riff_size, 36u + 12u);
  EXPECT_EQ(channels, 2);
  EXPECT_EQ(rate, 44100u);
  EXPECT_EQ(byte_rate, 44100u * 4);
  // x * 32767 truncated toward zero, interleaved as given.
  EXPECT_EQ(WavSamples(*wav), (std::vector<int16_t>{16383, -16383, 32767, -32767, 0, 8191}));
}

TEST(AudioSummaryTest, OutOfRangeSamplesAreClippedAsTorchDoes) {
  const std::vector<float> loud = {1.5f, -3.0f, 0.999f};
  absl::StatusOr<std::string> wav = EncodeWav(F32View(loud, {3}), 8000);
  ASSERT_TRUE(wav.ok()) << wav.status();
  EXPECT_EQ(WavSamples(*wav), (std::vector<int16_t>{32767, -32767, 32734}));
}

TEST(AudioSummaryTest, RejectsInvalidInput) {
  const std::vector<float> ok = {0.1f, 0.2f};
  EXPECT_FALSE(EncodeWav(F32View(ok, {2}), 0).ok());
  EXPECT_FALSE(EncodeWav(F32View(ok, {2}), -16000).ok());
  EXPECT_FALSE(EncodeWav(F32View(ok, {2}), std::nan("")).ok());
  EXPECT_FALSE(EncodeWav(F32View(ok, {1, 1, 2}), 16000).ok());
  const std::vector<float> empty;
  EXPECT_FALSE(EncodeWav(F32View(empty, {0}), 16000).ok());
  const std::vector<float> with_inf = {0.1f, INFINITY, 0.3f};
  absl::StatusOr<std::string> inf = EncodeWav(F32View(with_inf, {3}), 16000);
  ASSERT_FALSE(inf.ok());
  EXPECT_EQ(inf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(inf.status().message().find("index 1"), std::string_view::npos) << inf.status();
  const std::vector<int32_t> ints = {1, 2};
  const std::vector<int64_t> int_shape = {2};  // outlives the view's span
  const TensorView int_view{DType::kInt32, int_shape,
                            std::string_view(reinterpret_cast<const char*>(ints.data()), 8)};
  EXPECT_FALSE(EncodeWav(int_view, 16000).ok());
  EXPECT_FALSE(MakeAudioSummaryV1("", F32View(ok, {2}), 16000).ok());
}

TEST(AudioSummaryTest, V2IsARankOneBlobSequenceOfWavs) {
  // Four mono clips of 2 frames; max_outputs keeps three.
  const std::vector<float> clips = {0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};
  absl::StatusOr<tb::Summary::Value> value =
      MakeAudioSummaryV2("a", F32View(clips, {4, 2, 1}), 16000);
  ASSERT_TRUE(value.ok()) << value.status();
  const tb::TensorProto& tensor = value->tensor();
  EXPECT_EQ(tensor.dtype(), tb::DT_STRING);
  ASSERT_EQ(tensor.tensor_shape().dim_size(), 1);
  EXPECT_EQ(tensor.tensor_shape().dim(0).size(), 3);
  ASSERT_EQ(tensor.string_val_size(), 3);
  const std::vector<float> second = {0.2f, 0.3f};
  EXPECT_EQ(tensor.string_val(1), *EncodeWav(F32View(second, {2}), 16000));
  EXPECT_EQ(value->metadata().plugin_data().plugin_name(), "audio");
  EXPECT_EQ(value->metadata().data_class(), tb::DATA_CLASS_BLOB_SEQUENCE);
  tb::AudioPluginData content;
  ASSERT_TRUE(content.ParseFromString(value->metadata().plugin_data().content()));
  EXPECT_EQ(content.encoding(), tb::AudioPluginData::WAV);
  EXPECT_EQ(content.version(), 0);
  // A single clip is a batch of one; a NaN in a kept clip names the clip.
  EXPECT_EQ(MakeAudioSummaryV2("a", F32View(second, {2}), 16000)->tensor().string_val_size(), 1);
  std::vector<float> bad = clips;
  bad[3] = std::nanf("");
  absl::StatusOr<tb::Summary::Value> failed = MakeAudioSummaryV2("a", F32View(bad, {4, 2, 1}), 16000);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("audio clip 1"), std::string_view::npos);
}

}  // namespace
}  // namespace tblog
