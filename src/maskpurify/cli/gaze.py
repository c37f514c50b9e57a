"""``maskpurify gaze``: purify each eye of a photo, an eye crop, a folder of them or a video, and read its gaze with
the shipped synthetic-trained estimator, from the purified eye and from the mask alone."""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskpurify.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from maskpurify.purification.gaze import GazeReader
    from maskpurify.purification.pipeline import Pipeline

HELP = "read gaze from purified eyes (photo, eye crop, folder or video): CSV, JSON and pictures with arrows"

COLUMNS = ("input", "frame", "name", "side", "purified", "reason", "pitch", "yaw", "mask_pitch", "mask_yaw",
           "x0", "y0", "width", "height")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="a face photo or eye crop (any size), a folder of them, or a video")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: gaze.csv, gaze.json, NAME_gaze.png per image (gaze.mp4 for a video)")
    parser.add_argument("--eye", choices=("left", "right", "auto"), default="auto",
                        help="which eye the eye crops show ('auto': face photos tell each eye's side; crops are "
                             "taken as the canonical left eye)")
    parser.add_argument("--masks", choices=("auto", "faces"), default="auto",
                        help="'auto': FaceMesh for face photos when installed, else the segmenter; 'faces': "
                             "FaceMesh must find a face")
    parser.add_argument("--save-crops", action="store_true",
                        help="also write each eye's purified 36x60 crop (canonical side, what a gaze model trained "
                             "on synthetic eyes takes) as crops/NAME_EYE.png")
    parser.add_argument("--device", default="auto", help="torch device: cpu, cuda, cuda:1 or auto (default auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskpurify.config import command_line
    from maskpurify.fileio import OutputGuard, atomic_write_json, atomic_write_text, read_image, save_image
    from maskpurify.purification.gaze import GazeReader, draw_gaze
    from maskpurify.purification.inputs import input_kind, list_images
    from maskpurify.purification.pipeline import Pipeline

    src, out = Path(args.input), Path(args.out)
    kind = input_kind(src)
    if kind == "dataset":
        raise UserError(f"--input {src}: a rendered dataset has gaze labels already; use maskpurify evaluate-gaze")
    if kind == "camera":
        raise UserError(f"--input {src}: gaze reads files; record the camera first (maskpurify purify --input {src} "
                        "--out camera.mp4 --masks faces)")
    guard = OutputGuard(out, inputs=[src], overwrite=args.overwrite)
    guard.claim(out, "--out", folder=True)
    files = list_images(src, recursive=False, skip=out) if kind == "folder" else [src]
    names = [p.relative_to(src).as_posix() if kind == "folder" else p.name for p in files]
    targets = {"csv": out / "gaze.csv", "json": out / "gaze.json"}
    for what, path in targets.items():
        guard.claim(path, what)
    pictures = {}
    if kind == "video":
        pictures[src] = guard.claim(out / "gaze.mp4", "video")
    else:
        for path, name in zip(files, names):
            pictures[path] = guard.claim(out / f"{Path(name).stem}_gaze.png", "picture")
    faces_mode = "always" if args.masks == "faces" else "auto"
    pipeline = Pipeline.load(device=args.device, faces_mode=faces_mode, video=kind == "video")
    reader = GazeReader.load(device=str(pipeline.engine.device))
    rows: list[dict[str, Any]] = []

    def crop_file(name: str, k: int) -> Path:
        return guard.claim(out / "crops" / f"{Path(name).stem}_{k}.png", "crop")

    with pipeline:
        if kind == "video":
            _video(pipeline, reader, src, pictures[src], rows, args, crop_file)
        else:
            for path, name in tqdm(list(zip(files, names)), unit="img", desc="gaze", disable=args.quiet,
                                   leave=False):
                image = read_image(path)
                result = pipeline.purify(image, None, args.eye, name=name)
                gazes = reader.read([result])[0]
                save_image(pictures[path], draw_gaze(result.image, gazes))
                for k, (eye, gaze) in enumerate(zip(result.eyes, gazes)):
                    rows.append({"input": name, "frame": "", **gaze.row()})
                    if args.save_crops:
                        save_image(crop_file(name, k), eye.output)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    atomic_write_text(targets["csv"], buffer.getvalue())
    atomic_write_json(targets["json"], {"command": command_line(), "input": str(src), "units": "degrees",
                                        "convention": "MPIIGaze: positive pitch looks up, positive yaw towards "
                                                      "the image's left; pitch/yaw from the purified eye, "
                                                      "mask_pitch/mask_yaw from the mask alone",
                                        "eyes": rows})
    purified = sum(bool(r["purified"]) for r in rows)
    print(f"read gaze of {len(rows)} eyes ({purified} purified, {len(rows) - purified} passed through) from "
          f"{len(files) if kind != 'video' else 'the frames of'} {src} into {out}")
    return 0


def _video(pipeline: Pipeline, reader: GazeReader, src: Path, dest: Path, rows: list[dict[str, Any]],
           args: argparse.Namespace, crop_file: Callable[[str, int], Path]) -> None:
    """Every frame: its eyes' gaze rows and the frame with arrows into ``dest``."""
    from tqdm import tqdm

    from maskpurify.fileio import save_image
    from maskpurify.formats.video import VideoWriter, iter_frames, video_info
    from maskpurify.purification.gaze import draw_gaze

    info = video_info(src)
    bar = tqdm(total=info.frame_count or None, unit="frame", desc="gaze", disable=args.quiet, leave=False)
    with VideoWriter(dest, info.fps if info.fps > 0 else 30.0, (info.width, info.height)) as writer:
        for index, frame in enumerate(iter_frames(src)):
            result = pipeline.purify(frame, None, args.eye, name=f"frame {index}")
            gazes = reader.read([result])[0]
            writer.write(draw_gaze(result.image, gazes))
            for k, (eye, gaze) in enumerate(zip(result.eyes, gazes)):
                rows.append({"input": src.name, "frame": index, **gaze.row()})
                if args.save_crops:
                    save_image(crop_file(f"frame{index:06d}", k), eye.output)
            bar.update(1)
    bar.close()
