"""``python -m core ...``: every capability of the app as a command printing JSON.

Contract (see README): results go to stdout as JSON (one object per image, one per line, for
commands that take several images); progress and logs go to stderr; bad input exits non-zero
with a one-line message. Image arguments may be files, folders (their images, sorted) or
``@list.txt`` files naming one image per line, so large batches never need a long command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class UsageError(Exception):
    """Bad input for a command; printed as one line, exit status 2."""


def expand_inputs(arguments: Sequence[str]) -> list[Path]:
    """Files as given, folders as their images (sorted, recursively), ``@file`` as its lines."""
    paths: list[Path] = []
    for argument in arguments:
        if argument.startswith("@"):
            list_file = Path(argument[1:])
            if not list_file.is_file():
                raise UsageError(f"list file {list_file} does not exist")
            lines = list_file.read_text(encoding="utf-8").splitlines()
            paths.extend(Path(line.strip()) for line in lines if line.strip())
        elif Path(argument).is_dir():
            paths.extend(sorted(p for p in Path(argument).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(Path(argument))
    if not paths:
        raise UsageError("no images given")
    return paths


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def cmd_analyze(args: argparse.Namespace) -> int:
    from core.detect import DETECTORS
    from core.images import ImageError, load_image
    from core.photo import analysis_json, photo_pipeline

    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    pipeline, unavailable = photo_pipeline(args.detector)
    for reason in unavailable.values():
        print(f"note: {reason}", file=sys.stderr)
    failures = 0
    for path in expand_inputs(args.images):
        try:
            image = load_image(path)
        except ImageError as error:
            failures += 1
            emit({"image": str(path), "error": str(error)})
            continue
        result = pipeline.process(image)
        errors = pipeline.stats.snapshot()["errors"]
        if errors:
            raise RuntimeError("; ".join(f"{stage}: {message}" for stage, message in errors.items()))
        emit(analysis_json(str(path), image, result))
    return 1 if failures else 0


def cmd_annotate_video(args: argparse.Namespace) -> int:
    from core.detect import DETECTORS
    from core.pipeline import FramePipeline, PipelineConfig
    from core.processors import build_processors
    from core.video import VideoError, annotate_video

    source, target = Path(args.input), Path(args.output)
    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    if target.suffix.lower() != ".mp4":
        raise UsageError(f"{target}: the output is an MP4 file, name it *.mp4")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such folder for the output")
    if target.exists() and source.exists() and target.samefile(source):
        raise UsageError("the output would overwrite the input; choose another OUT")
    names = [name.strip() for name in args.processors.split(",") if name.strip()]
    options = {"recognition": {"gallery": args.gallery}} if args.gallery else {}
    processors, unavailable = build_processors(names, options)
    if unavailable:
        raise UsageError("; ".join(unavailable.values()))
    pipeline = FramePipeline(PipelineConfig(detector=args.detector, processors=processors, tracking=True))
    shown = -5

    def progress(done: int, total: int) -> None:
        nonlocal shown
        percent = 100 * done // max(total, 1)
        if percent // 5 != shown // 5:
            shown = percent
            print(f"progress: {done}/{total} frames ({percent}%)", file=sys.stderr, flush=True)

    try:
        summary = annotate_video(source, target, pipeline, progress=progress)
    except VideoError as error:
        raise UsageError(str(error)) from error
    emit({**summary, "processors": [p.name for p in processors], "detector": args.detector})
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from core.models import model_status

    emit({"models": [status.to_json() for status in model_status()]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser("analyze", help="detect and describe the faces in images (JSON Lines)")
    analyze.add_argument("images", nargs="+", metavar="IMAGE", help="image file, folder of images, or @list.txt")
    analyze.add_argument("--detector", default="haar", help="face detector: haar (default), hog or cnn")
    analyze.set_defaults(run=cmd_analyze)

    video = commands.add_parser("annotate-video", help="annotate every frame of a video into an MP4 (JSON summary)")
    video.add_argument("input", metavar="IN", help="video file (mp4, mov, mkv, webm, avi...; at most 500 MB, 10 minutes)")
    video.add_argument("output", metavar="OUT", help="annotated MP4 to write (H.264, audio kept)")
    video.add_argument("--gallery", metavar="DB", help="gallery for recognition (default: the app's gallery)")
    video.add_argument(
        "--processors", default="recognition", help="comma-separated processors in the catalogue (default: recognition; '' for boxes only)"
    )
    video.add_argument("--detector", default="haar", help="face detector: haar (default), hog or cnn")
    video.set_defaults(run=cmd_annotate_video)

    models = commands.add_parser("models", help="which models are available and where their weights come from")
    models.set_defaults(run=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one readable line, not a traceback
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
