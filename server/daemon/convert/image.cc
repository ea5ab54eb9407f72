#include "daemon/convert/summaries.h"

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_util.h"
#include "daemon/convert/fields.h"
#include "engine/media/image_summary.h"
#include "engine/media/png.h"

namespace tblog::daemon::convert {
namespace {

// A pixel tensor's engine layout and sizes.
struct PixelShape {
  ImageLayout layout = ImageLayout::kHW;
  int64_t batch = 1;  // images in the tensor (1 for the unbatched layouts)
  int64_t height = 0;
  int64_t width = 0;
};

// The engine's layout for `pixels` shaped `shape`, after checking the rank and
// the per-image and per-record limits.
absl::StatusOr<PixelShape> PixelShapeOf(int layout, std::span<const int64_t> shape,
                                        const Limits& limits) {
  PixelShape out;
  const size_t rank = shape.size();
  switch (layout) {
    case v1::PIXEL_LAYOUT_HWC:
    case v1::PIXEL_LAYOUT_CHW:
      if (rank == 2) {
        out.layout = ImageLayout::kHW;
        out.height = shape[0], out.width = shape[1];
      } else if (rank == 3 && layout == v1::PIXEL_LAYOUT_HWC) {
        out.layout = ImageLayout::kHWC;
        out.height = shape[0], out.width = shape[1];
      } else if (rank == 3) {
        out.layout = ImageLayout::kCHW;
        out.height = shape[1], out.width = shape[2];
      } else {
        return Bad("pixels", absl::StrCat("shape ", ShapeString(shape), " has rank ", rank,
                                          "; layout ", Sv(v1::PixelLayout_Name(layout)),
                                          " needs 2 or 3"));
      }
      break;
    case v1::PIXEL_LAYOUT_NHWC:
    case v1::PIXEL_LAYOUT_NCHW: {
      if (rank != 4) {
        return Bad("pixels", absl::StrCat("shape ", ShapeString(shape), " has rank ", rank,
                                          "; layout ", Sv(v1::PixelLayout_Name(layout)),
                                          " needs 4"));
      }
      const bool nhwc = layout == v1::PIXEL_LAYOUT_NHWC;
      out.layout = nhwc ? ImageLayout::kNHWC : ImageLayout::kNCHW;
      out.batch = shape[0];
      out.height = nhwc ? shape[1] : shape[2];
      out.width = nhwc ? shape[2] : shape[3];
      break;
    }
    default: return Bad("layout", UnknownEnum(layout));
  }
  if (out.batch > limits.max_images_per_record) {
    return Bad("pixels", absl::StrCat("batch of ", out.batch,
                                      " images is more than the limit of ",
                                      limits.max_images_per_record));
  }
  // Dims are bounded by max_tensor_elements (ViewTensor), so products of two
  // or three of them cannot overflow.
  if (out.height * out.width > limits.max_image_pixels) {
    return Bad("pixels", absl::StrCat(out.height, "x", out.width, " = ", out.height * out.width,
                                      " pixels is more than the limit of ",
                                      limits.max_image_pixels));
  }
  return out;
}

}  // namespace

absl::StatusOr<tb::Summary::Value> ConvertImage(std::string_view tag, const v1::Image& image,
                                                const Limits& limits) {
  if (!v1::ImageStyle_IsValid(image.style())) return Bad("style", UnknownEnum(image.style()));
  if (!v1::PixelLayout_IsValid(image.layout())) return Bad("layout", UnknownEnum(image.layout()));
  const int max_outputs = static_cast<int>(std::min<int64_t>(
      image.max_outputs() == 0 ? kDefaultMaxImageOutputs : image.max_outputs(),
      std::max<int64_t>(limits.max_images_per_record, 1)));
  const bool tensor_style = image.style() == v1::IMAGE_STYLE_TENSOR;
  switch (image.source_case()) {
    case v1::Image::kPixels: {
      absl::StatusOr<TensorView> view =
          ViewTensor(image.pixels(), "pixels", limits, /*allow_shm=*/true);
      if (!view.ok()) return view.status();
      if (view->dtype != DType::kUint8 && !IsFloatDType(view->dtype)) {
        return Bad("pixels", absl::StrCat("dtype ", Sv(DTypeName(view->dtype)),
                                          " is not supported (uint8, or float in [0,1])"));
      }
      absl::StatusOr<PixelShape> shape = PixelShapeOf(image.layout(), view->shape, limits);
      if (!shape.ok()) return shape.status();
      const bool batched =
          shape->layout == ImageLayout::kNHWC || shape->layout == ImageLayout::kNCHW;
      absl::StatusOr<tb::Summary::Value> value;
      if (tensor_style) {
        value = MakeImageSummaryV2(tag, *view, shape->layout, max_outputs);
      } else if (batched) {
        // The grid holds every image: bound its size as one image's.
        const int64_t grid_pixels = shape->batch * shape->height * shape->width;
        if (grid_pixels > limits.max_image_pixels) {
          return Bad("pixels", absl::StrCat("the tiled grid would have ", grid_pixels,
                                            " pixels, more than the limit of ",
                                            limits.max_image_pixels));
        }
        value = MakeImageGridSummaryV1(tag, *view, shape->layout);
      } else {
        value = MakeImageSummaryV1(tag, *view, shape->layout);
      }
      if (!value.ok()) return Annotate(value.status(), "pixels");
      return value;
    }
    case v1::Image::kEncoded: {
      const std::string& encoded = image.encoded();
      const ImageFormat format = DetectImageFormat(encoded);
      if (format != ImageFormat::kPng && format != ImageFormat::kJpeg) {
        return Bad("encoded", "is neither PNG nor JPEG (checked by its signature)");
      }
      absl::StatusOr<ImageHeader> header = ReadImageHeader(encoded);
      if (!header.ok()) return Annotate(header.status(), "encoded");
      const int64_t pixels = int64_t{header->height} * header->width;
      if (pixels > limits.max_image_pixels) {
        return Bad("encoded", absl::StrCat(header->height, "x", header->width,
                                           " pixels is more than the limit of ",
                                           limits.max_image_pixels));
      }
      absl::StatusOr<tb::Summary::Value> value;
      if (tensor_style) {
        const std::string_view one[] = {encoded};
        value = MakeEncodedImageSummaryV2(tag, one, max_outputs);
      } else {
        value = MakeEncodedImageSummaryV1(tag, encoded);
      }
      if (!value.ok()) return Annotate(value.status(), "encoded");
      return value;
    }
    case v1::Image::SOURCE_NOT_SET: break;
  }
  return Bad("source", "neither pixels nor encoded is set");
}

}  // namespace tblog::daemon::convert
