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


def available_processors(**options: Any) -> tuple:
    """Every processor that can run here, built once; the others are named on stderr."""
    from core.processors import ProcessorUnavailable, get_processor, processor_specs

    processors = []
    for spec in processor_specs():
        try:
            processors.append(get_processor(spec.name, **options))
        except ProcessorUnavailable as error:
            print(f"note: {error}", file=sys.stderr)
    return tuple(processors)


def cmd_analyze(args: argparse.Namespace) -> int:
    from core.detect import DETECTORS
    from core.images import ImageError, load_image
    from core.pipeline import FramePipeline, PipelineConfig

    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    config = PipelineConfig(detector=args.detector, processors=available_processors(), tracking=False)
    pipeline = FramePipeline(config)
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
        height, width = image.shape[:2]
        emit({"image": str(path), "width": width, "height": height, "faces": [f.to_json() for f in result.faces]})
    return 1 if failures else 0


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
