// One rank of a data-parallel job for reduce_e2e_test: opens RUN_PATH on
// TARGET as writer "rank<RANK>" with the C++ client (group size from
// WORLD_SIZE, as a torchrun rank would), and logs, per step 1..STEPS, its own
// value step + RANK / 8 of "loss" (MEAN), "loss_weighted" (MEAN, weight
// RANK + 1), "loss_sum", "loss_min", "loss_max" and "ranks" (COUNT). Then it
// closes and exits 0.
// Once its run is open it creates BARRIER_DIR/<RANK> and, before logging,
// waits until BARRIER_DIR holds WORLD_SIZE files, as the ranks of a job start
// together (a run whose holders all closed would otherwise close between two
// slow starts). With DIE_AFTER > 0 it does not wait: it logs alone, stops
// after that step, flushes, prints "ready" and waits to be killed (the test
// sends SIGKILL mid-run; its hold outlives it for the writer lease).
//
//   WORLD_SIZE=N BARRIER_DIR=D reduce_rank_child TARGET RUN_PATH RANK STEPS [DIE_AFTER]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "tblog/client.h"

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s TARGET RUN_PATH RANK STEPS [DIE_AFTER]\n", argv[0]);
    return 2;
  }
  const int rank = std::atoi(argv[3]);
  const int steps = std::atoi(argv[4]);
  const int die_after = argc == 6 ? std::atoi(argv[5]) : 0;
  tblog::WriterOptions options;  // reduce_group_size: $WORLD_SIZE
  options.target = argv[1];
  options.run_path = argv[2];
  options.writer_id = "rank" + std::to_string(rank);
  options.batch_delay = absl::Milliseconds(5);
  auto writer = tblog::Writer::Open(options);
  if (!writer.ok()) {
    std::fprintf(stderr, "open: %s\n", writer.status().ToString().c_str());
    return 1;
  }
  const char* barrier = std::getenv("BARRIER_DIR");
  if (barrier != nullptr) {
    const std::filesystem::path dir(barrier);
    std::ofstream(dir / std::to_string(rank)).put('\n');
    auto count = [&] {
      return std::distance(std::filesystem::directory_iterator(dir),
                           std::filesystem::directory_iterator());
    };
    while (die_after == 0 && count() < static_cast<long>(options.reduce_group_size)) {
      usleep(20000);
    }
  }
  using tblog::v1::ReduceOp;
  for (int step = 1; step <= steps; ++step) {
    const float value = static_cast<float>(step) + static_cast<float>(rank) / 8.0f;
    auto log = [&](const char* tag, ReduceOp op, double weight = 0) {
      return (*writer)->scalar(tag, step, value, tblog::ReduceOptions{.op = op, .weight = weight});
    };
    for (absl::Status status :
         {log("loss", tblog::v1::REDUCE_OP_MEAN),
          log("loss_weighted", tblog::v1::REDUCE_OP_MEAN, rank + 1),
          log("loss_sum", tblog::v1::REDUCE_OP_SUM), log("loss_min", tblog::v1::REDUCE_OP_MIN),
          log("loss_max", tblog::v1::REDUCE_OP_MAX), log("ranks", tblog::v1::REDUCE_OP_COUNT)}) {
      if (!status.ok()) {
        std::fprintf(stderr, "step %d: %s\n", step, status.ToString().c_str());
        return 1;
      }
    }
    if (step == die_after) {
      if (absl::Status flushed = (*writer)->flush(/*sync=*/false); !flushed.ok()) {
        std::fprintf(stderr, "flush: %s\n", flushed.ToString().c_str());
        return 1;
      }
      std::printf("ready\n");
      std::fflush(stdout);
      while (true) pause();
    }
  }
  if (absl::Status closed = (*writer)->close(); !closed.ok()) {
    std::fprintf(stderr, "close: %s\n", closed.ToString().c_str());
    return 1;
  }
  return 0;
}
