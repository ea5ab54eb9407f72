// tblog-codec-bench: what the daemon pays to PNG-encode an image and to
// CRC-32C a record, for every candidate library and setting, with the machine
// and load average, the old choice next to the chosen one (issue 13, "Cheaper
// PNG and CRC"). Times are CPU time of this process (CLOCK_PROCESS_CPUTIME_ID,
// medians), so other load on the machine inflates them less than wall time;
// instruction counts come from running one encode under valgrind's callgrind
// (hardware counters are often unavailable in VMs).
//
//   tblog-codec-bench [--instructions none|chosen|all] [--no-large] [--only NAME]
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <isa-l/crc.h>
#include <nmmintrin.h>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "engine/io/crc32c.h"
#include "machine.h"
#include "png_candidates.h"

namespace tblog::bench {
namespace {

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Deterministic pseudo-random numbers (no <random> distribution differences
// between standard libraries: the images are the same everywhere).
struct Lcg {
  uint64_t state;
  uint32_t Next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

uint8_t Clamp(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// A diagonal colour gradient with +-8 of uniform noise: a rendered feature
// map or a noisy sample.
RawImage GradientNoise(int side) {
  RawImage im{side, side, 3, std::vector<uint8_t>(static_cast<size_t>(side) * side * 3)};
  Lcg rng{42};
  size_t i = 0;
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int base = (x * 255 / side + y * 255 / side) / 2 + c * 40;
        im.pixels[i++] = Clamp(base % 256 + static_cast<int>(rng.Next() % 17) - 8);
      }
    }
  }
  return im;
}

// Photo-like: smooth shading, hard-edged discs of flat colour, a striped
// texture region and slight sensor noise.
RawImage PhotoLike(int side) {
  RawImage im{side, side, 3, std::vector<uint8_t>(static_cast<size_t>(side) * side * 3)};
  Lcg rng{7};
  size_t i = 0;
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      const double u = static_cast<double>(x) / side;
      const double v = static_cast<double>(y) / side;
      int rgb[3] = {static_cast<int>(120 + 80 * u), static_cast<int>(90 + 100 * v),
                    static_cast<int>(160 - 60 * u * v)};
      const double d1 = (u - 0.3) * (u - 0.3) + (v - 0.35) * (v - 0.35);
      const double d2 = (u - 0.7) * (u - 0.7) + (v - 0.65) * (v - 0.65);
      if (d1 < 0.03) rgb[0] = 220, rgb[1] = 60, rgb[2] = 40;
      if (d2 < 0.02) rgb[0] = 30, rgb[1] = 170, rgb[2] = 70;
      if (v > 0.8) {
        const int stripe = ((x / 3 + y / 5) % 4) * 20;
        for (int& c : rgb) c = c / 2 + stripe;
      }
      for (int c = 0; c < 3; ++c) im.pixels[i++] = Clamp(rgb[c] + static_cast<int>(rng.Next() % 5) - 2);
    }
  }
  return im;
}

struct NamedImage {
  std::string name;
  RawImage image;
};

std::vector<NamedImage> Images(bool large) {
  std::vector<NamedImage> images;
  std::vector<int> sides = {256};
  if (large) sides.push_back(1024);
  for (int side : sides) {
    images.push_back({absl::StrFormat("gradient+noise %dx%dx3", side, side), GradientNoise(side)});
    images.push_back({absl::StrFormat("photo-like %dx%dx3", side, side), PhotoLike(side)});
  }
  return images;
}

// Called once under callgrind with collection toggled on inside it only.
__attribute__((noinline)) std::string MeasuredEncode(const PngCandidate& c, const RawImage& im) {
  return c.encode(im);
}

// The instructions of one encode of image `image_index` by `name`: this
// program run again under callgrind, counting inside MeasuredEncode only.
// -1 when valgrind is missing or fails.
double CountInstructions(const std::string& name, size_t image_index, bool large) {
  const std::string out = absl::StrFormat("/tmp/tblog-codec-bench.%d.callgrind", getpid());
  const std::string command = absl::StrFormat(
      "valgrind --tool=callgrind --callgrind-out-file=%s --toggle-collect='*MeasuredEncode*' "
      "/proc/%d/exe %s --child-encode '%s' --child-image %d >/dev/null 2>&1",
      out, getpid(), large ? "" : "--no-large", name, image_index);
  if (std::system(command.c_str()) != 0) return -1;
  std::ifstream in(out);
  std::string line;
  double total = -1;
  while (std::getline(in, line)) {
    if (line.rfind("summary:", 0) == 0 || line.rfind("totals:", 0) == 0) {
      total = std::strtod(line.c_str() + line.find(':') + 1, nullptr);
    }
  }
  std::remove(out.c_str());
  return total;
}

// Median CPU seconds of one call of `fn`, over at least 3 calls and
// `min_seconds` in all.
template <typename Fn>
double MedianCpuSeconds(Fn&& fn, double min_seconds) {
  std::vector<double> times;
  const double start = CpuSeconds();
  while (times.size() < 3 || CpuSeconds() - start < min_seconds) {
    const double t0 = CpuSeconds();
    fn();
    times.push_back(CpuSeconds() - t0);
  }
  std::nth_element(times.begin(), times.begin() + static_cast<long>(times.size() / 2), times.end());
  return times[times.size() / 2];
}

void RunPng(const std::string& instructions, bool large, const std::string& only,
            double min_seconds) {
  const std::vector<NamedImage> images = Images(large);
  const std::vector<PngCandidate> candidates = PngCandidates();
  for (size_t i = 0; i < images.size(); ++i) {
    const RawImage& im = images[i].image;
    std::printf("\n-- PNG encode, %s (%zu bytes of pixels) --\n", images[i].name.c_str(),
                im.pixels.size());
    std::printf("%-24s %-7s %10s %7s %12s %14s  %s\n", "candidate", "", "PNG bytes", "ratio",
                "CPU us", "instructions", "decodes to input");
    for (const PngCandidate& c : candidates) {
      if (!only.empty() && c.name != only) continue;
      const std::string png = c.encode(im);
      absl::StatusOr<RawImage> decoded = DecodePng(png);
      const bool same = decoded.ok() && decoded->pixels == im.pixels && decoded->channels == 3;
      const double seconds = MedianCpuSeconds([&] { (void)c.encode(im); }, min_seconds);
      std::string count = "-";
      const bool count_it = instructions == "all" || (instructions == "chosen" && !c.note.empty());
      if (count_it && im.pixels.size() <= (size_t{1} << 20)) {
        const double n = CountInstructions(c.name, i, large);
        count = n < 0 ? "valgrind?" : absl::StrFormat("%.1fM", n / 1e6);
      }
      std::printf("%-24s %-7s %10zu %7.3f %12.0f %14s  %s\n", c.name.c_str(), c.note.c_str(),
                  png.size(), static_cast<double>(png.size()) / static_cast<double>(im.pixels.size()),
                  seconds * 1e6, count.c_str(), same ? "yes" : "NO");
    }
  }
}

// The engine's CRC-32C before issue 13: bytes up to 8-byte alignment, then
// one crc32 instruction chain, 8 bytes a step (latency-bound: 3 cycles per 8
// bytes).
__attribute__((target("sse4.2"))) uint32_t Sse42OneWay(uint32_t crc, const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint32_t c0 = crc ^ 0xffffffffu;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {
    c0 = _mm_crc32_u8(c0, *p++);
    --n;
  }
  uint64_t c = c0;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return c32 ^ 0xffffffffu;
}

// ISA-L's crc32_iscsi takes and returns the CRC without the final inversion
// and an int length.
uint32_t IsaL(uint32_t crc, const char* data, size_t n) {
  return ~crc32_iscsi(reinterpret_cast<unsigned char*>(const_cast<char*>(data)),
                      static_cast<int>(n), ~crc);
}

void RunCrc(double min_seconds) {
  struct Crc {
    const char* name;
    const char* note;
    uint32_t (*fn)(uint32_t, const char*, size_t);
  };
  const Crc crcs[] = {
      {"sse4.2 aligned 1-way", "old", Sse42OneWay},
      {"crc32c::Extend", "chosen", crc32c::Extend},
      {"table slicing-by-8", "", crc32c::ExtendPortable},
      {"ISA-L crc32_iscsi", "", IsaL},
  };
  std::printf("\n-- CRC-32C (abseil's absl::ComputeCrc32c is not in Debian's abseil 20220623) --\n");
  std::printf("%-21s %-7s %10s %12s %10s  %s\n", "candidate", "", "bytes", "ns/call", "GB/s",
              "same CRC");
  std::string data(size_t{1} << 20, '\0');
  Lcg rng{1};
  for (char& ch : data) ch = static_cast<char>(rng.Next());
  for (size_t size : {size_t{8}, size_t{64}, size_t{128}, size_t{256}, size_t{1024},
                      size_t{65536}, size_t{1} << 20}) {
    const uint32_t expected = crc32c::ExtendPortable(0, data.data() + 1, size);
    for (const Crc& crc : crcs) {
      // Enough calls per timing that the clock's cost vanishes.
      const size_t calls = std::max<size_t>(1, (size_t{1} << 22) / size);
      volatile uint32_t sink = 0;
      const double seconds = MedianCpuSeconds(
          [&] {
            for (size_t k = 0; k < calls; ++k) sink = sink + crc.fn(k, data.data() + 1, size);
          },
          min_seconds);
      const double per_call = seconds / static_cast<double>(calls);
      std::printf("%-21s %-7s %10zu %12.1f %10.2f  %s\n", crc.name, crc.note, size, per_call * 1e9,
                  static_cast<double>(size) / per_call / 1e9,
                  crc.fn(0, data.data() + 1, size) == expected ? "yes" : "NO");
    }
  }
}

}  // namespace
}  // namespace tblog::bench

int main(int argc, char** argv) {
  using namespace tblog::bench;
  CLI::App app("PNG encoders and CRC-32C implementations, old choice next to the chosen one");
  std::string instructions = "chosen";
  bool no_large = false;
  std::string only;
  double min_seconds = 0.1;
  std::string child_encode;
  int child_image = -1;
  app.add_option("--instructions", instructions,
                 "count instructions under callgrind for: none, chosen (old and chosen rows, "
                 "default) or all candidates (minutes); images up to 1 MiB only")
      ->check(CLI::IsMember({"none", "chosen", "all"}));
  app.add_flag("--no-large", no_large, "only the 256x256 images, not the 1024x1024 ones");
  app.add_option("--only", only, "only the PNG candidate of this name (as printed)");
  app.add_option("--min-seconds", min_seconds, "CPU seconds spent timing each row (default 0.1)");
  app.add_option("--child-encode", child_encode)->group("");  // used by CountInstructions
  app.add_option("--child-image", child_image)->group("");
  CLI11_PARSE(app, argc, argv);

  if (!child_encode.empty()) {
    const auto images = Images(!no_large);
    for (const PngCandidate& c : PngCandidates()) {
      if (c.name != child_encode) continue;
      (void)c.encode(images.at(static_cast<size_t>(child_image)).image);  // warm-up, not counted
      return MeasuredEncode(c, images.at(static_cast<size_t>(child_image)).image).empty() ? 1 : 0;
    }
    return 2;
  }
  std::printf("machine: %s\nload average: %s\n", MachineLine().c_str(), LoadAverage().c_str());
  RunPng(instructions, !no_large, only, min_seconds);
  if (only.empty()) RunCrc(min_seconds / 2);
  std::printf("\nload average after: %s\n", LoadAverage().c_str());
  return 0;
}
