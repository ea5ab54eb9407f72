#include "png_candidates.h"

#include <libdeflate.h>
#include <png.h>
#include <spng.h>

#include <csetjmp>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/media/image_summary.h"
#include "engine/media/png_writer.h"

namespace tblog::bench {
namespace {

void AppendToString(png_structp png, png_bytep data, png_size_t size) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), size);
}
void NoFlush(png_structp) {}

int LibpngColorType(int channels) {
  switch (channels) {
    case 1: return PNG_COLOR_TYPE_GRAY;
    case 2: return PNG_COLOR_TYPE_GRAY_ALPHA;
    case 3: return PNG_COLOR_TYPE_RGB;
    default: return PNG_COLOR_TYPE_RGBA;
  }
}

// libpng as the engine used it before (png.cc up to 93bbe6f), with the zlib
// level and the filter set as parameters: filters < 0 keeps libpng's default
// (all five filters, chosen per row = "adaptive").
std::string EncodeLibpng(const RawImage& image, int level, int filters) {
  std::string out;
  out.reserve(image.pixels.size() / 2 + 64);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return "";
  }
  png_set_write_fn(png, &out, AppendToString, NoFlush);
  png_set_compression_level(png, level);
  if (filters >= 0) png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
               static_cast<png_uint_32>(image.height), 8, LibpngColorType(image.channels),
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(image.width) * static_cast<size_t>(image.channels);
  for (int y = 0; y < image.height; ++y) {
    png_write_row(png, image.pixels.data() + static_cast<size_t>(y) * stride);
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string EncodeSpng(const RawImage& image, int level, int filter_choice) {
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(SPNG_CTX_ENCODER), spng_ctx_free);
  spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1);
  spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, level);
  spng_set_option(ctx.get(), SPNG_FILTER_CHOICE, filter_choice);
  static constexpr uint8_t kColor[] = {0, SPNG_COLOR_TYPE_GRAYSCALE,
                                       SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, SPNG_COLOR_TYPE_TRUECOLOR,
                                       SPNG_COLOR_TYPE_TRUECOLOR_ALPHA};
  spng_ihdr ihdr{};
  ihdr.width = static_cast<uint32_t>(image.width);
  ihdr.height = static_cast<uint32_t>(image.height);
  ihdr.bit_depth = 8;
  ihdr.color_type = kColor[image.channels];
  spng_set_ihdr(ctx.get(), &ihdr);
  if (spng_encode_image(ctx.get(), image.pixels.data(), image.pixels.size(), SPNG_FMT_PNG,
                        SPNG_ENCODE_FINALIZE) != 0) {
    return "";
  }
  size_t size = 0;
  int error = 0;
  void* buffer = spng_get_png_buffer(ctx.get(), &size, &error);
  if (buffer == nullptr) return "";
  std::string out(static_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

// The engine's filtering and framing with libdeflate at `level` in place of
// igzip; one compressor per level, kept, as EncodePng keeps igzip's memory.
std::string EncodeEngine(const RawImage& image, int level, png_writer::Filter filter) {
  static libdeflate_compressor* compressors[13] = {};
  libdeflate_compressor*& c = compressors[level];
  if (c == nullptr) c = libdeflate_alloc_compressor(level);
  const std::string filtered = png_writer::FilterRows(image, filter);
  auto png = png_writer::Assemble(image, filtered, libdeflate_zlib_compress_bound(c, filtered.size()),
                                  [c](const uint8_t* in, size_t n, uint8_t* out, size_t cap) {
                                    return libdeflate_zlib_compress(c, in, n, out, cap);
                                  });
  return png.ok() ? *png : "";
}

}  // namespace

std::vector<PngCandidate> PngCandidates() {
  using png_writer::Filter;
  std::vector<PngCandidate> all;
  all.push_back({"libpng z6 adaptive", "old",
                 [](const RawImage& im) { return EncodeLibpng(im, -1, -1); }});
  all.push_back({"EncodePng (igzip l1 up)", "chosen",
                 [](const RawImage& im) { auto png = EncodePng(im); return png.ok() ? *png : ""; }});
  // The engine's whole path for a uint8 HWC image record: tensor to image,
  // encode, Summary.Value. Its PNG is EncodePng's.
  all.push_back({"MakeImageSummaryV1 u8", "path", [](const RawImage& im) -> std::string {
                   const int64_t shape[] = {im.height, im.width, im.channels};
                   const TensorView view{
                       DType::kUint8, shape,
                       std::string_view(reinterpret_cast<const char*>(im.pixels.data()),
                                        im.pixels.size())};
                   auto value = MakeImageSummaryV1("bench/image", view, ImageLayout::kHWC);
                   return value.ok() ? value->image().encoded_image_string() : "";
                 }});
  struct NamedFilter {
    const char* name;
    int libpng;
    int spng;
    Filter engine;
  };
  static constexpr NamedFilter kFilters[] = {
      {"none", PNG_FILTER_NONE, SPNG_FILTER_CHOICE_NONE, Filter::kNone},
      {"sub", PNG_FILTER_SUB, SPNG_FILTER_CHOICE_SUB, Filter::kSub},
      {"up", PNG_FILTER_UP, SPNG_FILTER_CHOICE_UP, Filter::kUp},
      {"paeth", PNG_FILTER_PAETH, SPNG_FILTER_CHOICE_PAETH, Filter::kPaeth},
      {"adaptive", PNG_ALL_FILTERS, SPNG_FILTER_CHOICE_ALL, Filter::kNone}};
  for (int level = 1; level <= 6; ++level) {
    for (const NamedFilter& f : kFilters) {
      if (level == 6 && std::string_view(f.name) == "adaptive") continue;  // the "old" row
      all.push_back({absl::StrCat("libpng z", level, " ", f.name), "",
                     [level, f](const RawImage& im) { return EncodeLibpng(im, level, f.libpng); }});
    }
  }
  for (int level : {1, 6}) {
    for (const NamedFilter& f : kFilters) {
      all.push_back({absl::StrCat("spng z", level, " ", f.name), "",
                     [level, f](const RawImage& im) { return EncodeSpng(im, level, f.spng); }});
    }
  }
  for (int level : {1, 2, 4, 6}) {
    for (const NamedFilter& f : kFilters) {
      if (std::string_view(f.name) == "adaptive") continue;  // the writer filters one way
      all.push_back({absl::StrCat("libdeflate l", level, " ", f.name), "",
                     [level, f](const RawImage& im) { return EncodeEngine(im, level, f.engine); }});
    }
  }
  for (int level = 0; level <= png_writer::kMaxLevel; ++level) {
    for (const NamedFilter& f : kFilters) {
      if (std::string_view(f.name) == "adaptive") continue;
      if (level == png_writer::kDefaultLevel && f.engine == png_writer::kDefaultFilter) continue;
      all.push_back({absl::StrCat("igzip l", level, " ", f.name), "",
                     [level, f](const RawImage& im) {
                       auto png = png_writer::Encode(im, f.engine, level);
                       return png.ok() ? *png : "";
                     }});
    }
  }
  return all;
}

}  // namespace tblog::bench
