// Links against the installed tblog::client and buffers one scalar.
#include <cstdio>

#include "tblog/client.h"

int main() {
  tblog::WriterOptions options;
  options.target = "unix:/nonexistent-dir-for-tblog-tests/tblogd.sock";
  options.open_in_background = true;
  options.close_timeout = absl::Milliseconds(10);
  auto writer = tblog::Writer::Open(options);
  if (!writer.ok() || !(*writer)->scalar("loss", 0, 1.0f).ok()) return 1;
  std::printf("consumer: enqueued %llu\n",
              static_cast<unsigned long long>((*writer)->stats().enqueued));
  return (*writer)->stats().enqueued == 1 ? 0 : 1;
}
