"""fileio: the pixel limit before decoding, 16-bit and palette conversion, paths that may not leave a dataset, and
the one check every output path goes through."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskpurify.errors import UserError
from maskpurify.fileio import MAX_IMAGE_PIXELS, OutputGuard, atomic_write_bytes, check_outputs, check_within, \
    clean_stale_temps, current_umask, image_size, input_fingerprint, read_image, resolve_within


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, colour_type: int = 2) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` followed by a tiny IDAT: a decompression bomb's shape."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9000, 12000, 40000, 2**31 - 1])
def test_pixel_limit_is_checked_from_the_header_for_every_size(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(side, side))
    for call in (lambda: read_image(path), lambda: read_image(path, mode=None), lambda: image_size(path)):
        with pytest.raises(UserError, match=rf"bomb\.png: image too large.*limit {MAX_IMAGE_PIXELS} pixels"):
            call()
    assert Image.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS  # PIL's own guard agrees with ours


def test_pixel_limit_applies_to_masks_and_folders(tmp_path):
    from maskpurify.formats.folder import FolderReader
    from maskpurify.masks import load_mask

    (tmp_path / "eye.png").write_bytes(png_claiming(40000, 40000))
    with pytest.raises(UserError, match="eye.png: image too large"):
        list(FolderReader(tmp_path))
    Image.fromarray(np.zeros((36, 60, 3), np.uint8)).save(tmp_path / "eye.png")
    (tmp_path / "eye_mask.png").write_bytes(png_claiming(40000, 40000, colour_type=0))
    with pytest.raises(UserError, match="eye_mask.png: image too large"):
        load_mask(tmp_path / "eye_mask.png", (36, 60, 3))
    with pytest.raises(UserError, match="eye_mask.png: image too large"):
        list(FolderReader(tmp_path))


def test_small_limit_is_honoured(tmp_path):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "a.png")
    assert image_size(tmp_path / "a.png") == (50, 40)
    with pytest.raises(UserError, match=r"a\.png: image too large: 50x40 RGB would take 0 MiB \(2000 pixels\); the limit is 1999 pixels"):
        read_image(tmp_path / "a.png", max_pixels=1999)


def test_sixteen_bit_greyscale_is_scaled_not_saturated(tmp_path):
    values = np.linspace(0, 65535, 36 * 60).reshape(36, 60).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = read_image(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (36, 60, 3)
    expected = np.round(values / 257.0).astype(np.uint8)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 2]).all()
    assert rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb)) > 200  # not a white sheet
    assert read_image(tmp_path / "g16.png", mode="L").shape == (36, 60)


def test_sixteen_bit_label_maps_keep_their_labels_or_are_refused(tmp_path):
    labels = np.zeros((36, 60), np.uint16)
    labels[10:20, 20:40] = 2
    Image.fromarray(labels).save(tmp_path / "m16.png")
    assert np.array_equal(read_image(tmp_path / "m16.png", mode=None), labels.astype(np.uint8))
    labels[0, 0] = 1000
    Image.fromarray(labels).save(tmp_path / "m16.png")
    with pytest.raises(UserError, match=r"m16\.png: 16-bit label map with values above 255"):
        read_image(tmp_path / "m16.png", mode=None)


def test_palette_images_become_rgb_and_palette_masks_stay_labels(tmp_path):
    img = Image.new("P", (60, 36))
    img.putpalette([200, 10, 10, 10, 200, 10] + [0, 0, 0] * 254)
    img.putpixel((5, 5), 1)
    img.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    assert tuple(rgb[0, 0]) == (200, 10, 10) and tuple(rgb[5, 5]) == (10, 200, 10)
    labels = read_image(tmp_path / "p.png", mode=None)
    assert labels.shape == (36, 60) and labels[5, 5] == 1 and labels[0, 0] == 0
    grey = read_image(tmp_path / "p.png", mode="L")
    assert grey[0, 0] != grey[5, 5]


def test_float_images_directories_and_garbage_are_one_line(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(UserError, match=r"f\.tif: floating-point image"):
        read_image(tmp_path / "f.tif")
    with pytest.raises(UserError, match="is a folder, not an image file"):
        read_image(tmp_path)
    (tmp_path / "g.png").write_bytes(b"not an image at all")
    with pytest.raises(UserError, match=r"g\.png: unreadable or truncated image"):
        read_image(tmp_path / "g.png")
    Image.fromarray(np.zeros((36, 60, 3), np.uint8)).save(tmp_path / "t.png")
    (tmp_path / "t.png").write_bytes((tmp_path / "t.png").read_bytes()[:60])
    with pytest.raises(UserError, match=r"t\.png: unreadable or truncated image"):
        read_image(tmp_path / "t.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x.gif")  # a format we never decode
    with pytest.raises(UserError, match=r"x\.gif: unreadable or truncated image"):
        read_image(tmp_path / "x.gif")


def test_resolve_within_refuses_absolute_climbing_and_escaping_names(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    assert resolve_within(root, "sub/a.png", "idx") == root / "sub" / "a.png"
    for name in ("/etc/passwd", "../secret.png", "sub/../../secret.png", "C:/x.png", "..\\secret.png", "", 7):
        with pytest.raises(UserError, match="idx: file_name|idx: file name"):
            resolve_within(root, name, "idx", "file_name" if name != 7 else "file")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(UserError, match="leads outside"):
        resolve_within(root, "link.png", "idx")
    with pytest.raises(UserError, match="leads outside"):
        check_within(root, root / "link.png", "idx")


def test_output_guard_refuses_inputs_duplicates_escapes_and_silent_overwrites(tmp_path):
    video = tmp_path / "in.avi"
    video.write_bytes(b"v")
    link = tmp_path / "alias.avi"
    link.symlink_to(video)
    hard = tmp_path / "hard.avi"
    os.link(video, hard)
    for out in (video, link, hard):  # --overwrite never lets an output replace an input
        with pytest.raises(UserError, match="is the input"):
            check_outputs({"--mask-video": out}, {"--input": video}, overwrite=True)
    with pytest.raises(UserError, match="--mask-video .*also given as --out"):
        check_outputs({"--out": tmp_path / "o.mp4", "--mask-video": tmp_path / "o.mp4"}, {"--input": video})
    with pytest.raises(UserError, match="also given as"):  # the same file through a link
        (tmp_path / "d").mkdir()
        (tmp_path / "dl").symlink_to(tmp_path / "d")
        check_outputs({"--out": tmp_path / "d" / "o.mp4", "--mask-video": tmp_path / "dl" / "o.mp4"}, {})
    guard = OutputGuard(root=tmp_path / "out")
    assert guard.claim(tmp_path / "out" / "a" / "b.png") == tmp_path / "out" / "a" / "b.png"
    with pytest.raises(UserError, match="lies outside the output folder"):
        guard.claim(tmp_path / "out" / ".." / "escape.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sneaky.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(UserError, match="lies outside the output folder"):
        guard.claim(tmp_path / "out" / "sneaky.png")
    (tmp_path / "out" / "old.png").write_bytes(b"o")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        guard.claim(tmp_path / "out" / "old.png")
    assert guard.claim(tmp_path / "out" / "old.png", overwrite=True)
    with pytest.raises(UserError, match="is a folder; expected a file"):
        OutputGuard(overwrite=True).claim(tmp_path / "out")
    with pytest.raises(UserError, match="contains the input"):
        OutputGuard(inputs=[tmp_path / "out" / "old.png"]).claim(tmp_path, folder=True)
    (tmp_path / "file").write_bytes(b"f")
    with pytest.raises(UserError, match="is not a folder"):
        OutputGuard().claim(tmp_path / "file" / "x.png")


def test_guarded_writes_are_atomic_and_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        path = OutputGuard(root=tmp_path).write_bytes(tmp_path / "sub" / "a.bin", b"abc")
        assert path.read_bytes() == b"abc"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.umask(0o002)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
        assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o664
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.bin", "sub"]


def test_video_writer_output_follows_the_umask(tmp_path):
    from maskpurify.formats.video import VideoWriter

    with VideoWriter(tmp_path / "v.mp4", 10.0) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert stat.S_IMODE((tmp_path / "v.mp4").stat().st_mode) == 0o666 & ~current_umask()


def test_stale_temps_are_cleaned_by_name(tmp_path):
    for name in (".a.json.abcd1234.tmp", ".b.csv.zz_y9x8w.tmp", "keep.tmp", ".c.json.short.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in clean_stale_temps(tmp_path, ["a.json"])] == [".a.json.abcd1234.tmp"]
    clean_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.json.short.tmp", "keep.tmp"]


def test_input_fingerprint_changes_with_the_content(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"one")
    first = input_fingerprint(path)
    path.write_bytes(b"two")
    assert input_fingerprint(path) != first and input_fingerprint(path)["size"] == 3
