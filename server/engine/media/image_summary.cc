#include "engine/media/image_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "engine/io/summary_tag.h"
#include "tblog/tensorboard/plugins.pb.h"

namespace tblog {
namespace {

// Sizes of a pixel tensor once its layout is known.
struct PixelDims {
  int64_t batch = 1;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 1;
  bool channels_first = false;
};

size_t LayoutRank(ImageLayout layout) {
  switch (layout) {
    case ImageLayout::kHW: return 2;
    case ImageLayout::kHWC:
    case ImageLayout::kCHW: return 3;
    case ImageLayout::kNHWC:
    case ImageLayout::kNCHW: return 4;
  }
  return 0;
}

std::string_view LayoutName(ImageLayout layout) {
  switch (layout) {
    case ImageLayout::kHW: return "HW";
    case ImageLayout::kHWC: return "HWC";
    case ImageLayout::kCHW: return "CHW";
    case ImageLayout::kNHWC: return "NHWC";
    case ImageLayout::kNCHW: return "NCHW";
  }
  return "?";
}

absl::StatusOr<PixelDims> ResolveDims(const TensorView& pixels, ImageLayout layout) {
  TBLOG_RETURN_IF_ERROR(pixels.Validate());
  const std::span<const int64_t> s = pixels.shape;
  if (s.size() != LayoutRank(layout)) {
    return absl::InvalidArgumentError(absl::StrCat("pixel tensor has rank ", s.size(), " but layout ",
                                                   Sv(LayoutName(layout)), " needs rank ",
                                                   LayoutRank(layout)));
  }
  PixelDims d;
  switch (layout) {
    case ImageLayout::kHW: d = {1, s[0], s[1], 1, false}; break;
    case ImageLayout::kHWC: d = {1, s[0], s[1], s[2], false}; break;
    case ImageLayout::kCHW: d = {1, s[1], s[2], s[0], true}; break;
    case ImageLayout::kNHWC: d = {s[0], s[1], s[2], s[3], false}; break;
    case ImageLayout::kNCHW: d = {s[0], s[2], s[3], s[1], true}; break;
  }
  if (d.batch < 1) return absl::InvalidArgumentError("image batch has no images");
  if (d.channels < 1 || d.channels > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image has ", d.channels, " channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)"));
  }
  if (d.height < 1 || d.width < 1 || d.height > kMaxImageSide || d.width > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", d.height, "x", d.width,
                                                   " (HxW); each side must be 1..", kMaxImageSide));
  }
  if (d.height * d.width * d.channels > kMaxImageBytes) {
    return absl::InvalidArgumentError(absl::StrCat("image has ", d.height * d.width * d.channels,
                                                   " pixel values; the limit is ", kMaxImageBytes));
  }
  return d;
}

bool IsFloat(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat64 || dtype == DType::kFloat16 ||
         dtype == DType::kBfloat16;
}

// torch: (x.astype(float32) * 255).clip(0, 255).astype(uint8), i.e. truncation.
uint8_t FloatPixelToByte(float x) {
  // NaN goes to 0 as torch's cast gives it, never to an undefined cast
  // (float pixels may come from a shared-memory slice rewritten as read).
  const float scaled = x * 255.0f;
  if (!(scaled > 0.0f)) return 0;
  return static_cast<uint8_t>(std::min(scaled, 255.0f));
}

void SetImage(const RawImage& image, std::string png, tb::Summary::Value* value) {
  tb::Summary::Image* out = value->mutable_image();
  out->set_height(image.height);
  out->set_width(image.width);
  out->set_colorspace(image.channels);
  out->set_encoded_image_string(std::move(png));
}

void SetV2Metadata(tb::Summary::Value* value) {
  tb::ImagePluginData content;
  content.set_converted_to_tensor(true);
  tb::SummaryMetadata* metadata = value->mutable_metadata();
  metadata->mutable_plugin_data()->set_plugin_name("images");
  metadata->mutable_plugin_data()->set_content(content.SerializeAsString());
  metadata->set_data_class(tb::DATA_CLASS_BLOB_SEQUENCE);
}

// Fills the v2 tensor: [width, height, blobs...].
void SetV2Tensor(int width, int height, std::vector<std::string> blobs, tb::Summary::Value* value) {
  tb::TensorProto* tensor = value->mutable_tensor();
  tensor->set_dtype(tb::DT_STRING);
  tensor->mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(blobs.size()) + 2);
  tensor->add_string_val(std::to_string(width));
  tensor->add_string_val(std::to_string(height));
  for (std::string& blob : blobs) tensor->add_string_val(std::move(blob));
}

// ImagesFromTensor, converting only the first `max_images` of the batch.
absl::StatusOr<std::vector<RawImage>> ConvertImages(const TensorView& pixels, ImageLayout layout,
                                                    int64_t max_images);

}  // namespace

absl::StatusOr<std::vector<RawImage>> ImagesFromTensor(const TensorView& pixels,
                                                       ImageLayout layout) {
  return ConvertImages(pixels, layout, INT64_MAX);
}

namespace {

absl::StatusOr<std::vector<RawImage>> ConvertImages(const TensorView& pixels, ImageLayout layout,
                                                    int64_t max_images) {
  absl::StatusOr<PixelDims> dims = ResolveDims(pixels, layout);
  if (!dims.ok()) return dims.status();
  const PixelDims d = *dims;
  if (pixels.dtype != DType::kUint8 && !IsFloat(pixels.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pixels are ", Sv(DTypeName(pixels.dtype)), "; expected uint8 or float in [0,1]"));
  }
  const int64_t plane = d.height * d.width;
  const int64_t per_image = plane * d.channels;
  const int64_t count = std::min(d.batch, max_images);
  std::vector<RawImage> images;
  images.reserve(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) {
    RawImage image{static_cast<int>(d.height), static_cast<int>(d.width),
                   static_cast<int>(d.channels), {}};
    image.pixels.resize(static_cast<size_t>(per_image));
    for (int64_t c = 0; c < d.channels; ++c) {
      for (int64_t p = 0; p < plane; ++p) {
        // Source element of channel c at pixel p (= y * W + x) in image n.
        const int64_t src = n * per_image + (d.channels_first ? c * plane + p : p * d.channels + c);
        uint8_t byte;
        if (pixels.dtype == DType::kUint8) {
          byte = static_cast<uint8_t>(pixels.data[static_cast<size_t>(src)]);
        } else {
          const float x = static_cast<float>(pixels.ElementAsDouble(src));
          if (!std::isfinite(x)) {
            return absl::InvalidArgumentError(
                absl::StrCat("pixel value at flat index ", src, " is ", x, "; must be finite"));
          }
          byte = FloatPixelToByte(x);
        }
        image.pixels[static_cast<size_t>(p * d.channels + c)] = byte;
      }
    }
    images.push_back(std::move(image));
  }
  return images;
}

}  // namespace

absl::StatusOr<RawImage> TileImages(std::span<const RawImage> images, int max_columns) {
  if (images.empty()) return absl::InvalidArgumentError("no images to tile");
  if (max_columns < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_columns is ", max_columns, "; must be >= 1"));
  }
  const RawImage& first = images.front();
  TBLOG_RETURN_IF_ERROR(ValidateRawImage(first));
  for (size_t i = 1; i < images.size(); ++i) {
    if (images[i].height != first.height || images[i].width != first.width ||
        images[i].channels != first.channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image ", i, " is ", images[i].height, "x", images[i].width, "x", images[i].channels,
          " but image 0 is ", first.height, "x", first.width, "x", first.channels));
    }
    TBLOG_RETURN_IF_ERROR(ValidateRawImage(images[i]));
  }
  const int64_t count = static_cast<int64_t>(images.size());
  const int64_t columns = std::min<int64_t>(count, max_columns);
  const int64_t rows = (count + columns - 1) / columns;
  if (rows * first.height > kMaxImageSide || columns * first.width > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat("a grid of ", rows, "x", columns, " images of ",
                                                   first.height, "x", first.width,
                                                   " exceeds the side limit ", kMaxImageSide));
  }
  RawImage grid{static_cast<int>(rows * first.height), static_cast<int>(columns * first.width),
                first.channels, {}};
  if (int64_t{grid.height} * grid.width * grid.channels > kMaxImageBytes) {
    return absl::InvalidArgumentError("the image grid exceeds the pixel byte limit");
  }
  grid.pixels.assign(static_cast<size_t>(grid.height) * grid.width * grid.channels, 0);
  const size_t row_bytes = static_cast<size_t>(first.width) * first.channels;
  const size_t grid_row_bytes = static_cast<size_t>(grid.width) * grid.channels;
  for (int64_t i = 0; i < count; ++i) {
    const size_t top = static_cast<size_t>(i / columns) * first.height;
    const size_t left_bytes = static_cast<size_t>(i % columns) * row_bytes;
    for (int y = 0; y < first.height; ++y) {
      std::copy_n(images[static_cast<size_t>(i)].pixels.data() + y * row_bytes, row_bytes,
                  grid.pixels.data() + (top + static_cast<size_t>(y)) * grid_row_bytes + left_bytes);
    }
  }
  return grid;
}

absl::StatusOr<tb::Summary::Value> MakeImageSummaryV1(std::string_view tag,
                                                      const TensorView& pixels,
                                                      ImageLayout layout) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  if (layout == ImageLayout::kNHWC || layout == ImageLayout::kNCHW) {
    return absl::InvalidArgumentError(
        "a v1 image summary takes one image (HW, HWC or CHW); tile a batch with "
        "MakeImageGridSummaryV1");
  }
  absl::StatusOr<std::vector<RawImage>> images = ImagesFromTensor(pixels, layout);
  if (!images.ok()) return images.status();
  const RawImage& image = images->front();
  absl::StatusOr<std::string> png = EncodePng(image);
  if (!png.ok()) return png.status();
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  SetImage(image, *std::move(png), &value);
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeImageGridSummaryV1(std::string_view tag,
                                                          const TensorView& batch,
                                                          ImageLayout layout) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  if (layout != ImageLayout::kNHWC && layout != ImageLayout::kNCHW) {
    return absl::InvalidArgumentError(
        absl::StrCat("an image grid needs a batch layout (NHWC or NCHW), got ", Sv(LayoutName(layout))));
  }
  absl::StatusOr<std::vector<RawImage>> images = ImagesFromTensor(batch, layout);
  if (!images.ok()) return images.status();
  absl::StatusOr<RawImage> grid = TileImages(*images);
  if (!grid.ok()) return grid.status();
  absl::StatusOr<std::string> png = EncodePng(*grid);
  if (!png.ok()) return png.status();
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  SetImage(*grid, *std::move(png), &value);
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeImageSummaryV2(std::string_view tag,
                                                      const TensorView& pixels,
                                                      ImageLayout layout, int max_outputs) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  TBLOG_RETURN_IF_ERROR(CheckMaxOutputs(max_outputs));
  absl::StatusOr<std::vector<RawImage>> images = ConvertImages(pixels, layout, max_outputs);
  if (!images.ok()) return images.status();
  const size_t kept = images->size();
  std::vector<std::string> blobs;
  blobs.reserve(kept);
  for (size_t i = 0; i < kept; ++i) {
    absl::StatusOr<std::string> png = EncodePng((*images)[i]);
    if (!png.ok()) return Annotate(png.status(), absl::StrCat("image ", i));
    blobs.push_back(*std::move(png));
  }
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  SetV2Tensor(images->front().width, images->front().height, std::move(blobs), &value);
  SetV2Metadata(&value);
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeEncodedImageSummaryV1(std::string_view tag,
                                                             std::string_view encoded) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  absl::StatusOr<ImageHeader> header = ReadImageHeader(encoded);
  if (!header.ok()) return header.status();
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  tb::Summary::Image* image = value.mutable_image();
  image->set_height(header->height);
  image->set_width(header->width);
  image->set_colorspace(header->channels);
  image->set_encoded_image_string(std::string(encoded));
  return value;
}

absl::StatusOr<tb::Summary::Value> MakeEncodedImageSummaryV2(
    std::string_view tag, std::span<const std::string_view> encoded, int max_outputs) {
  TBLOG_RETURN_IF_ERROR(CheckSummaryTag(tag));
  TBLOG_RETURN_IF_ERROR(CheckMaxOutputs(max_outputs));
  if (encoded.empty()) return absl::InvalidArgumentError("no encoded images");
  const size_t kept = std::min(encoded.size(), static_cast<size_t>(max_outputs));
  ImageHeader first;
  std::vector<std::string> blobs;
  blobs.reserve(kept);
  for (size_t i = 0; i < kept; ++i) {
    absl::StatusOr<ImageHeader> header = ReadImageHeader(encoded[i]);
    if (!header.ok()) return Annotate(header.status(), absl::StrCat("encoded image ", i));
    if (i == 0) {
      first = *header;
    } else if (header->width != first.width || header->height != first.height) {
      return absl::InvalidArgumentError(absl::StrCat(
          "encoded image ", i, " is ", header->width, "x", header->height, " (WxH) but image 0 is ",
          first.width, "x", first.height, "; a v2 image summary holds one size"));
    }
    blobs.emplace_back(encoded[i]);
  }
  tb::Summary::Value value;
  value.set_tag(std::string(tag));
  SetV2Tensor(first.width, first.height, std::move(blobs), &value);
  SetV2Metadata(&value);
  return value;
}

}  // namespace tblog
