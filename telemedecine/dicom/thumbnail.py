"""A small PNG preview of one DICOM image, when its pixel data decodes (numpy + Pillow).

Grey-level images go through the modality LUT (rescale slope / intercept) and the VOI LUT or the first
window given in the file (or the full range when there is none), MONOCHROME1 is inverted; colour images
are converted to RGB. For a multi-frame image the middle frame is taken. Whatever does not decode
(compressed syntaxes without a decoder installed, no pixel data, odd photometric interpretations) gives
``None``: the study simply has no preview.

Pure code: no Django import.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space

DEFAULT_SIZE = 256


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    frame = frame.astype(np.float64)
    low, high = float(np.nanmin(frame)), float(np.nanmax(frame))
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(frame.shape, dtype=np.uint8)
    return ((frame - low) * (255.0 / (high - low))).clip(0, 255).astype(np.uint8)


def thumbnail_png(data: bytes, *, size: int = DEFAULT_SIZE) -> bytes | None:
    """PNG bytes of the image (at most ``size`` pixels on its longer side), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            if "PixelData" not in ds:
                return None
            pixels = ds.pixel_array
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            if frames > 1:
                pixels = pixels[frames // 2]
            photometric = str(ds.get("PhotometricInterpretation", "")).upper()
            if samples == 1:
                grey = apply_modality_lut(pixels, ds)
                grey = apply_voi_lut(grey, ds) if ("WindowCenter" in ds or "VOILUTSequence" in ds) else grey
                image8 = _to_uint8(np.asarray(grey))
                if photometric == "MONOCHROME1":
                    image8 = 255 - image8
                image = Image.fromarray(image8, mode="L")
            elif samples == 3:
                if photometric.startswith("YBR"):
                    pixels = convert_color_space(pixels, photometric, "RGB")
                rgb = pixels if pixels.dtype == np.uint8 else _to_uint8(pixels)
                image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
            else:
                return None
            image.thumbnail((size, size))
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)
            return out.getvalue()
    except Exception:  # no decoder, damaged pixels, unexpected layout: no preview
        return None
