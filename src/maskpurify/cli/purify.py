"""``maskpurify purify``: purify an image, a folder of images, a rendered dataset, a video or a face photo."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from maskpurify.cli._common import add_config_arguments, resolve_config
from maskpurify.config import flag_type
from maskpurify.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from maskpurify.purification.video import VideoStats

HELP = "purify real images into the synthetic style (image, folder, rendered dataset, video or face photo)"

#: Settings that ``--config`` / ``--set`` may give; the flag of the same name, when given, wins.
FLAGS = ("checkpoint", "segmenter", "batch_size", "device", "eye", "eye_check", "face_crop_size", "backend",
         "encoder_preset")


@dataclass
class PurifyConfig:
    """What ``maskpurify purify`` resolves from defaults, ``--config`` and ``--set`` (a flag given wins)."""

    checkpoint: str | None = None  # None: the shipped weights/purifier
    segmenter: str | None = None  # None: the shipped weights/segmenter when present; 'none': no automatic masks
    batch_size: int = 64
    device: str = "auto"
    eye: Literal["left", "right", "auto"] = "auto"
    eye_check: bool = True
    face_crop_size: str | None = None  # None: the purifier's working size, from its checkpoint
    backend: Literal["auto", "torch", "onnx"] = "auto"  # the engine's backend (Purification.load)
    encoder_preset: str = "auto"  # videos: the H.264 preset; auto: ultrafast for live sources, else veryfast


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="PATH",
                        help="an image, a folder of images (NAME_mask.png beside an image is its mask), a rendered "
                             "dataset folder (meta.json + shard-*.npz), a video (.avi/.mp4/.mov/.mkv) or a camera "
                             "number (0: the first webcam; runs until Ctrl-C)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output: an image file, a folder, a dataset folder or a video file (same kind as input); "
                             "a folder or dataset output also gets the run record config.yaml + run.json")
    parser.add_argument("--checkpoint", metavar="CKPT", help="purifier checkpoint (default: weights/purifier; "
                        "weights/nir/purifier for an LPW-layout folder)")
    parser.add_argument("--segmenter", metavar="CKPT",
                        help="segmenter checkpoint for automatic masks (default: weights/segmenter when present, "
                             "weights/nir/segmenter for an LPW-layout folder; "
                             "'none': no automatic masks, every image needs its mask file)")
    parser.add_argument("--masks", metavar="{auto,faces,DIR}",
                        help="where masks come from: a folder (or, for one image, a file) of NAME_mask.png label "
                             "maps; 'auto' = automatic (FaceMesh for face photos when mediapipe is installed, else "
                             "the segmenter; for a rendered dataset: the segmenter, ignoring its stored masks); "
                             "'faces' = FaceMesh only. Default: NAME_mask.png beside each image, else automatic; "
                             "a rendered dataset's stored masks. A video is a face video when FaceMesh finds a face "
                             "in its first frames, else an eye video")
    parser.add_argument("--eye", choices=("left", "right", "auto"),
                        help="which of the subject's eyes the eye crops show. 'left' is the canonical side the "
                             "networks were trained on, as the renderer draws it: the inner corner (tear duct) on "
                             "the image's left. 'right' crops are mirrored before the segmenter and the purifier "
                             "and their outputs mirrored back. 'auto' (default): face photos take each eye's side "
                             "from FaceMesh, eye crops are taken as 'left'")
    parser.add_argument("--eye-check", action=argparse.BooleanOptionalAction,
                        help="leave an image (or an eye of a face photo) unpurified when its automatic mask is no "
                             "plausible eye (closed eye, no iris, blank or noise image): single images and videos "
                             "keep it unchanged, folders skip it, one line each says why (default on; masks you give "
                             "are always used)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="folders and datasets: skip outputs a previous run into the same --out finished "
                             "(default on)")
    parser.add_argument("--recursive", action="store_true", help="folders: descend into sub-folders (keeps "
                        "relative paths; never into --out or an earlier purify run's output folder)")
    parser.add_argument("--batch-size", type=flag_type("batch_size"), help="images per forward pass (default 64)")
    parser.add_argument("--device", help="torch device: cpu, cuda, cuda:1 or auto (default auto: cuda when present)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"),
                        help="run the segmenter and purifier in PyTorch or in ONNX Runtime (CPU; the 'onnx' extra). "
                             "auto (default): ONNX Runtime on the CPU when it is installed and the networks are "
                             "exported (the shipped ones are), else PyTorch; it never writes anything. onnx: "
                             "checkpoints of your own are exported to ~/.cache/maskpurify/onnx on first use")
    parser.add_argument("--save-masks", action="store_true",
                        help="also write the mask used for each image (NAME_mask.png) and, for single images "
                             "and face photos, an overlay for inspection (NAME_overlay.png)")
    parser.add_argument("--mask-video", metavar="PATH", help="videos: also write the colourised masks as a video")
    parser.add_argument("--live", action="store_true",
                        help="videos: read the file as a live stream, at its own frame rate, dropping frames when the "
                             "machine falls behind (as a camera input always does; a file is otherwise processed "
                             "whole)")
    parser.add_argument("--encoder-preset", metavar="PRESET",
                        help="videos written as H.264 (.mp4/.mov/.mkv): the x264 preset (ultrafast, superfast, "
                             "veryfast, ... veryslow), a trade of speed for file size at the same quality. auto "
                             "(default): ultrafast for a camera or --live, which must keep up (about 6 ms of one core "
                             "a 720p frame, files about 6x larger), else veryfast (about 19 ms)")
    parser.add_argument("--face-crop-size", metavar="HxW",
                        help="face photos: size each eye crop is purified at, aspect 3:5 (default: the "
                             "purifier's working size from its checkpoint, 36x60 for the shipped one; larger keeps "
                             "more detail)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--face-crop-size {text}: expected HxW, e.g. 36x60") from None
    from maskpurify.purification.faces import check_crop_size

    return check_crop_size((h, w))


def run(args: argparse.Namespace) -> int:
    from maskpurify.config import save_run_record
    from maskpurify.purification import Purification
    from maskpurify.purification.drivers import purify_dataset, purify_folder, purify_image_file
    from maskpurify.purification.video import purify_lpw, purify_video
    from maskpurify.purification.inputs import MaskSource, input_kind
    from maskpurify.purification.pipeline import Pipeline

    config = resolve_config(PurifyConfig, args, FLAGS)
    src, out = Path(args.input), Path(args.out)
    kind = input_kind(src)
    crop_size = _parse_size(config.face_crop_size) if config.face_crop_size else None
    masks = MaskSource.parse(args.masks)
    if args.mask_video is not None and kind not in ("video", "camera"):
        raise UserError("--mask-video applies to video inputs only")
    if args.live and kind != "video":
        raise UserError("--live applies to video files only (a camera is always live)")
    if kind == "lpw":  # LPW's near-IR eye-camera frames: the near-IR world's networks unless others are named
        from maskpurify.checkpoints import WEIGHTS_DIR

        config = replace(config, checkpoint=config.checkpoint or str(WEIGHTS_DIR / "nir" / "purifier"),
                         segmenter=config.segmenter or str(WEIGHTS_DIR / "nir" / "segmenter"))
    segmenter = False if config.segmenter == "none" else config.segmenter
    engine = Purification.load(config.checkpoint, segmenter, config.device, config.batch_size,
                               check_eyes=config.eye_check, backend=config.backend)
    if crop_size is None:
        crop_size = engine.working_size
        config = replace(config, face_crop_size=f"{crop_size[0]}x{crop_size[1]}")  # the run record's resolved value
    # Videos: FaceMesh tracking across frames when asked (--masks faces) or when it finds a face in the first frames
    # (purify_video decides); LPW's eye-camera videos never pay for it.
    video = kind in ("video", "camera", "lpw")
    faces_mode = "never" if kind == "lpw" else masks.faces_mode
    pipeline = Pipeline(engine, faces_mode, crop_size, video=video)
    settings: dict[str, Any] = {
        "checkpoint": str(Path(config.checkpoint).resolve()) if config.checkpoint else "default",
        "segmenter": str(Path(segmenter).resolve()) if segmenter else ("none" if segmenter is False else "default"),
        "face_crop_size": list(crop_size)}
    if config.eye == "right":  # only when it changes anything, so runs started before --eye existed still resume
        settings["eye"] = config.eye
    if not config.eye_check:
        settings["eye_check"] = False
    progress = not args.quiet
    eye = config.eye
    record = {"input": str(src), "output": str(out), "masks": args.masks}
    with pipeline:
        if kind == "dataset":
            data = purify_dataset(pipeline, src, out, overwrite=args.overwrite, resume=args.resume,
                                  progress=progress, settings=settings, masks=masks, eye=eye)
            save_run_record(out, config, None, {**record, "kind": "dataset", "samples": data.samples,
                                                "not_purified": data.not_purified})
            if data.not_purified:
                print(f"purified {data.samples - data.not_purified} of {data.samples} samples into dataset {out} "
                      f"({data.not_purified} kept unchanged: no plausible eye in the automatic mask)")
            else:
                print(f"purified {data.samples} samples into dataset {out}")
        elif kind == "folder":
            stats = purify_folder(pipeline, src, out, masks=masks, recursive=args.recursive,
                                  overwrite=args.overwrite, resume=args.resume, save_masks=args.save_masks,
                                  progress=progress, settings=settings, eye=eye)
            save_run_record(out, config, None, {**record, "kind": "folder", "purified": stats.purified,
                                                "already_done": stats.skipped, "not_purified": stats.not_purified})
            extra = f", {stats.faces} face photos" if stats.faces else ""
            extra += f", {stats.not_purified} not purified: no plausible eye" if stats.not_purified else ""
            print(f"purified {stats.purified} images into {out} ({stats.skipped} already done, "
                  f"{stats.automatic} automatic masks{extra})")
        elif kind == "lpw":
            if masks.kind not in ("default", "auto"):
                raise UserError(f"--masks {args.masks}: LPW videos take automatic masks only (--masks auto)")
            lpw = purify_lpw(pipeline, src, out, overwrite=args.overwrite, progress=progress, eye=eye)
            left = f"; {lpw.not_purified} written unchanged: no plausible eye" if lpw.not_purified else ""
            print(f"purified {lpw.frames} frames of {lpw.videos} LPW videos ({lpw.fps:g} fps) into {out}, each "
                  f"K.txt beside its K.avi{left}")
        elif video:
            stats = purify_video(pipeline, int(str(src)) if kind == "camera" else src, out,
                                 Path(args.mask_video) if args.mask_video else None, overwrite=args.overwrite,
                                 masks=masks, progress=progress, eye=eye, live=args.live,
                                 preset=config.encoder_preset)
            print(video_summary(stats, out, faces=stats.face_video))
        else:
            result = purify_image_file(pipeline, src, out, masks=masks, overwrite=args.overwrite,
                                       save_masks=args.save_masks, eye=eye)
            method = "mask file" if result.method == "given" else result.method
            where = f", {len(result.eyes)} eyes" if result.method == "faces" else ""
            if not result.purified:
                from maskpurify.fileio import image_format, suffix_format

                how = "unchanged" if image_format(src) == suffix_format(out.suffix) else \
                    f"unchanged, re-encoded as {suffix_format(out.suffix)}"
                print(f"not purified {src} -> {out} {how} (mask: {method}{where}; no plausible eye)")
            else:
                left = f", {len(result.passed_through)} left as they were" if result.passed_through else ""
                print(f"purified {src} -> {out} (mask: {method}{where}{left})")
    return 0


def video_summary(stats: VideoStats, out: Path, faces: bool) -> str:
    """The one line a video run ends with: frames, where faces were found, eyes purified, speed, steadiness."""
    line = (f"purified {stats.frames} frames ({stats.width}x{stats.height} at {stats.fps:g} fps) into {out} "
            f"({stats.codec}) at {stats.frames_per_second:.1f} frames/s")
    if faces:
        line += f": a face in {stats.face_frames} of {stats.frames} frames, {stats.eyes_purified} eyes purified"
    elif stats.not_purified:
        line += f"; {stats.not_purified} written unchanged: no plausible eye"
    if stats.dropped:
        line += f"; {stats.dropped} frames dropped (the machine fell behind the live source)"
    if stats.input_change is not None and stats.output_change is not None:
        line += (f"; eyes' frame-to-frame change {stats.input_change:.2f} in, {stats.output_change:.2f} out "
                 "(mean absolute difference, 0-255)")
    return line
