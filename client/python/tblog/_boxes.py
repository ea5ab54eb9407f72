"""add_image_with_boxes: boxes (and their labels) drawn into the image on the
client, with Pillow, exactly as torch.utils.tensorboard draws them (red
2-pixel outlines, each label on a red band at the box's bottom left); the
daemon then encodes the pixels like any add_image. Pillow is imported only
here, as torch does too for this call."""

import warnings

import numpy as np

from tblog import _convert


def image_with_boxes(img_tensor, box_tensor, rescale, dataformats, labels):
    """uint8 HWC RGB(A) pixels of the image with the boxes drawn and scaled
    by `rescale`. boxes: [N, 4] (xmin, ymin, xmax, ymax) in pixels."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError("tblog: add_image_with_boxes draws the boxes with Pillow, which is "
                          "not installed (pip install pillow, or apt install python3-pil)") from None
    image = _hwc(_convert.to_numpy(img_tensor), dataformats)
    scale = 1.0 if image.dtype == np.uint8 else 255.0
    pixels = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    boxes = _convert.to_numpy(box_tensor).astype(np.float64).reshape(-1, 4)
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else list(labels)
        if len(labels) != len(boxes):  # torch ignores labels that do not match
            labels = None
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for i, (left, top, right, bottom) in enumerate(boxes.tolist()):
        draw.line([(left, top), (left, bottom), (right, bottom), (right, top), (left, top)],
                  width=2, fill="Red")
        if labels is not None and labels[i]:
            text = str(labels[i])
            if hasattr(font, "getsize"):      # what torch measures with
                with warnings.catch_warnings():  # deprecated since Pillow 9.2
                    warnings.simplefilter("ignore", DeprecationWarning)
                    width, height = font.getsize(text)
            else:                             # Pillow >= 10
                x0, y0, x1, y1 = font.getbbox(text)
                width, height = x1 - x0, y1 - y0
            margin = np.ceil(0.05 * height)
            draw.rectangle([(left, bottom - height - 2 * margin), (left + width, bottom)],
                           fill="Red")
            draw.text((left + margin, bottom - height - margin), text, fill="black", font=font)
    height, width = pixels.shape[:2]
    size = (int(width * rescale), int(height * rescale))
    if size != (width, height):
        picture = picture.resize(size, Image.LANCZOS)
    return np.asarray(picture)


def _hwc(array, dataformats):
    """torch's convert_to_HWC: HWC with 3 channels (gray repeated) or 4."""
    fmt = dataformats.upper()
    if fmt not in ("CHW", "HWC", "HW") or array.ndim != len(fmt):
        raise ValueError(f"add_image_with_boxes: image of shape {array.shape} with dataformats "
                         f"{dataformats!r}: expected CHW, HWC or HW")
    if fmt == "HW":
        array = array[:, :, None]
    elif fmt == "CHW":
        array = array.transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = np.concatenate([array] * 3, axis=2)
    if array.shape[2] not in (3, 4):
        raise ValueError(f"add_image_with_boxes: {array.shape[2]} channels; expected 1, 3 or 4")
    return array
