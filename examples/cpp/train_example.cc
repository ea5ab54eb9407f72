// A toy training loop that logs to tblogd through tblog::Writer: loss and
// accuracy scalars (train and validation sub-runs), a weight histogram, an
// image, text and hparams. Prints the run's path under the daemon's log dir.
//
//   tblogd --logdir ./logs &   then   tblog_train_example [address]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "tblog/client.h"

int main(int argc, char** argv) {
  tblog::WriterOptions options;
  if (argc > 1) options.target = argv[1];
  options.experiment = "example";
  options.name = "toy";
  options.hparams.values = {{"learning_rate", 0.01}, {"batch_size", 32}, {"optimizer", "sgd"}};
  options.hparams.metrics = {"loss", {"accuracy", "validation"}};

  auto opened = tblog::Writer::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "cannot open a run on %s: %s\n", options.target.c_str(),
                 opened.status().ToString().c_str());
    return 1;
  }
  tblog::Writer& writer = **opened;
  std::printf("run: %s\n", writer.run_path().c_str());

  std::mt19937 random(42);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> weights(1000);
  for (float& w : weights) w = noise(random);

  (void)writer.text("notes", 0, "A **toy** run: loss decays, weights shrink.");
  for (int64_t step = 0; step < 200; ++step) {
    const float loss = std::exp(-0.02f * static_cast<float>(step)) + 0.01f * noise(random);
    (void)writer.scalar("loss", step, loss, {.subrun = "train"});
    (void)writer.scalar("accuracy", step, 1.0f - loss, {.subrun = "train"});
    if (step % 20 == 0) {
      (void)writer.scalar("accuracy", step, 0.95f - loss, {.subrun = "validation"});
      for (float& w : weights) w *= 0.98f;
      (void)writer.histogram("weights/layer1", step, weights);
    }
  }

  // A 32x32 RGB gradient.
  std::vector<uint8_t> pixels(32 * 32 * 3);
  for (int y = 0; y < 32; ++y) {
    for (int x = 0; x < 32; ++x) {
      uint8_t* pixel = &pixels[static_cast<size_t>((y * 32 + x) * 3)];
      pixel[0] = static_cast<uint8_t>(x * 8);
      pixel[1] = static_cast<uint8_t>(y * 8);
      pixel[2] = 128;
    }
  }
  (void)writer.image("samples/gradient", 199, pixels, {32, 32, 3});

  // Record calls only buffer; the daemon's verdict comes back here.
  if (absl::Status flushed = writer.flush(); !flushed.ok()) {
    std::fprintf(stderr, "flush: %s\n", flushed.ToString().c_str());
  }
  const absl::Status closed = writer.close();
  const tblog::WriterStats stats = writer.stats();
  std::printf("records: %llu sent, %llu acknowledged; close: %s\n",
              static_cast<unsigned long long>(stats.sent),
              static_cast<unsigned long long>(stats.acknowledged), closed.ToString().c_str());
  return closed.ok() ? 0 : 1;
}
