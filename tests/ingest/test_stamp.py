import cv2
import numpy as np
import simplejpeg

from ingest.picture.stamp import Stamp, draw_stamp, read_stamp


def test_stamp_survives_downscale_and_jpeg():
    luma = np.full((360, 640), 100, np.uint8)
    draw_stamp(luma, tag=42, ms=123456789)
    small = cv2.resize(luma, (240, 134), interpolation=cv2.INTER_AREA)
    jpeg = simplejpeg.encode_jpeg(np.ascontiguousarray(small[..., None]), quality=60, colorspace="GRAY")
    decoded = simplejpeg.decode_jpeg(jpeg, colorspace="GRAY")[..., 0]
    assert read_stamp(decoded) == Stamp(tag=42, ms=123456789)


def test_stamp_checksum_rejects_other_pictures():
    noise = np.random.default_rng(1).integers(0, 255, (360, 640), dtype=np.uint8)
    assert read_stamp(noise) is None
    assert read_stamp(np.zeros((360, 640), np.uint8)) is None
    assert read_stamp(np.full((360, 640), 255, np.uint8)) is None


def test_age_is_wrap_safe():
    assert Stamp(tag=0, ms=2**32 - 10).age_ms(now_ms=5) == 15
