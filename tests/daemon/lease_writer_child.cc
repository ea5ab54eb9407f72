// A trainer for leases_e2e_test: opens RUN_PATH on TARGET as WRITER_ID with
// the C++ client, logs "loss" at steps 1..3, flushes, prints "ready" and then
// waits to be killed (the test sends SIGKILL: a trainer killed without a word).
//
//   lease_writer_child TARGET RUN_PATH WRITER_ID
#include <unistd.h>

#include <cstdio>

#include "tblog/client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s TARGET RUN_PATH WRITER_ID\n", argv[0]);
    return 2;
  }
  tblog::WriterOptions options;
  options.target = argv[1];
  options.run_path = argv[2];
  options.writer_id = argv[3];
  auto writer = tblog::Writer::Open(options);
  if (!writer.ok()) {
    std::fprintf(stderr, "open: %s\n", writer.status().ToString().c_str());
    return 1;
  }
  for (int step = 1; step <= 3; ++step) (void)(*writer)->scalar("loss", step, 0.5f);
  if (absl::Status flushed = (*writer)->flush(/*sync=*/true); !flushed.ok()) {
    std::fprintf(stderr, "flush: %s\n", flushed.ToString().c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  while (true) pause();
}
