// The PNG encoders that tblog-codec-bench compares: libpng + zlib (the
// engine's encoder before libdeflate) at zlib levels and filter choices,
// libspng, the engine's own writer (EncodePng: ISA-L's igzip) at every level
// and filter, and the same writer with libdeflate behind it.
#ifndef TBLOG_BENCH_PNG_CANDIDATES_H_
#define TBLOG_BENCH_PNG_CANDIDATES_H_

#include <functional>
#include <string>
#include <vector>

#include "engine/media/png.h"

namespace tblog::bench {

struct PngCandidate {
  std::string name;  // unique, e.g. "libpng z6 adaptive"; selects it on the command line
  // "old" (the encoder before), "chosen" (EncodePng now), "path" (the
  // engine's whole image-record conversion around EncodePng) or "".
  std::string note;
  // Encodes the image; returns the PNG, or "" on failure.
  std::function<std::string(const RawImage&)> encode;
};

// Every candidate: the old one first, the chosen one second, then the path.
std::vector<PngCandidate> PngCandidates();

}  // namespace tblog::bench

#endif  // TBLOG_BENCH_PNG_CANDIDATES_H_
