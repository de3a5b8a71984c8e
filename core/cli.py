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

from core.models import SHARED_DATA, WEIGHTS_DIR

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
WRITTEN_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what the commands write images as


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
    """One JSON line on stdout; strict JSON (a NaN or infinity is a bug, never printed)."""
    print(json.dumps(record, ensure_ascii=False, allow_nan=False), flush=True)


def _output_file(argument: str, suffixes: Sequence[str], inputs: Sequence[Path]) -> Path:
    """OUT checked before any work: a known suffix, an existing folder, and none of ``inputs``."""
    output = Path(argument)
    if output.suffix.lower() not in suffixes:
        raise UsageError(f"{output}: OUT must end in {' or '.join(suffixes)}")
    if not output.parent.is_dir():
        raise UsageError(f"{output.parent}: no such folder for the output")
    if output.exists() and any(path.exists() and output.samefile(path) for path in inputs):
        raise UsageError("the output would overwrite an input; choose another OUT")
    return output


def _write_image(path: Path, image_bgr: Any) -> None:
    import cv2

    if not cv2.imwrite(str(path), image_bgr):
        raise UsageError(f"{path}: could not write the image there")


def _raise_stage_errors(pipeline: Any) -> None:
    """A stage that failed on a command's input is an error of the command (a page skips it)."""
    errors = pipeline.stats.snapshot()["errors"]
    if errors:
        raise RuntimeError("; ".join(f"{stage}: {message}" for stage, message in errors.items()))


def _effects_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``--effects``/``--who`` as the effects processor's options ({} without effects)."""
    from core.analysis.effects import WHO, parse_effects

    try:
        effects = parse_effects(args.effects or "")
    except ValueError as error:
        raise UsageError(f"--effects: {error}") from error
    if args.who not in WHO:
        raise UsageError(f"--who must be one of {', '.join(WHO)}")
    if not effects:
        if args.who != "all":
            raise UsageError("--who chooses the faces that get --effects: give --effects too")
        return {}
    return {"effects": {"effects": effects, "who": args.who}}


def _annotated_outputs(argument: str | None, images: Sequence[Path]) -> dict[Path, Path]:
    """Where ``--annotated`` writes each image's drawing: the file OUT for one image, or
    IMAGE-annotated.png in the folder OUT for several; {} without it."""
    if argument is None:
        return {}
    target = Path(argument)
    if target.is_dir():
        return {image: target / f"{image.stem}-annotated.png" for image in images}
    if len(images) != 1:
        raise UsageError(f"--annotated {target}: with several images, give an existing folder")
    return {images[0]: _output_file(argument, WRITTEN_IMAGE_SUFFIXES, images)}


def cmd_analyze(args: argparse.Namespace) -> int:
    from core.analysis.detect import DETECTORS
    from core.images import ImageError, load_image
    from core.stream.draw import draw_result
    from core.stream.photo import analysis_json, photo_pipeline

    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    options = _effects_options(args)
    images = expand_inputs(args.images)
    drawings = _annotated_outputs(args.annotated, images)
    if args.gallery:
        _gallery(args.gallery).close()  # a missing gallery file is a usage error, not an empty gallery
        options["recognition"] = {"gallery": args.gallery}
    pipeline, unavailable = photo_pipeline(args.detector, options)
    for reason in unavailable.values():
        print(f"note: {reason}", file=sys.stderr)
    failures = 0
    for path in images:
        try:
            image = load_image(path)
        except ImageError as error:
            failures += 1
            emit({"image": str(path), "error": str(error)})
            continue
        result = pipeline.process(image)
        _raise_stage_errors(pipeline)
        record = analysis_json(str(path), image, result)
        if path in drawings:
            _write_image(drawings[path], draw_result(image, result, numbered=True))
            record["annotated"] = str(drawings[path])
        emit(record)
    return 1 if failures else 0


def cmd_annotate_video(args: argparse.Namespace) -> int:
    from core.analysis.detect import DETECTORS
    from core.analysis.processors import build_processors
    from core.stream.pipeline import FramePipeline, PipelineConfig
    from core.stream.video import VideoError, annotate_video

    source = Path(args.input)
    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    target = _output_file(args.output, (".mp4",), [source])
    if args.gallery:  # a missing gallery is a usage error, not an empty gallery (visitors may create it)
        _gallery(args.gallery, write=args.visitors, create=args.visitors).close()
    names = [name.strip() for name in args.processors.split(",") if name.strip()]
    options = _effects_options(args)
    if options:
        names.append("effects")
        if options["effects"]["who"] != "all" and "recognition" not in names:
            names.append("recognition")  # it decides who is unknown
    if args.visitors and "recognition" not in names:
        names.append("recognition")
    options["recognition"] = {"gallery": args.gallery, **({"visitors": True, "retention_days": args.retention_days} if args.visitors else {})}
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
    extra = {}
    books = [p.book for p in processors if getattr(p, "book", None) is not None]
    for book in books:  # the end of the file: merge the visitors the online decisions split
        extra = {"visitors_created": book.created, "visitors_merged": book.maintain(force=True),
                 "visitors": [v.name for v in book.gallery.visitors()]}  # fmt: skip
    emit({**summary, "processors": [p.name for p in processors], "detector": args.detector, **extra})
    return 0


def _visitor_label(value: str) -> str:
    """A visitor named by number (7) or label ("Visitor 7")."""
    from core.store.gallery import VISITOR_LABEL

    return f"{VISITOR_LABEL} {value.strip()}" if value.strip().isdigit() else value.strip()


def _visitor_json(visitor) -> dict:
    return {"id": visitor.id, "label": visitor.name, "visits": visitor.visits, "first_seen": visitor.first_seen,
            "last_seen": visitor.last_seen, "photos": visitor.photos}  # fmt: skip


def cmd_visitors(args: argparse.Namespace) -> int:
    with _gallery(args.gallery) as gallery:
        for visitor in gallery.visitors():
            emit(_visitor_json(visitor))
    return 0


def _gallery_change(gallery_path: str | None, change) -> object:
    from core.store.gallery import GalleryError

    with _gallery(gallery_path, write=True) as gallery:
        try:
            return change(gallery)
        except GalleryError as error:
            raise UsageError(str(error)) from error


def cmd_name_visitor(args: argparse.Namespace) -> int:
    person = _gallery_change(args.gallery, lambda g: g.name_visitor(_visitor_label(args.id), args.name))
    emit({"visitor": _visitor_label(args.id), "person": person.name, "photos": person.photos})
    return 0


def cmd_merge_visitors(args: argparse.Namespace) -> int:
    visitor = _gallery_change(args.gallery, lambda g: g.merge_visitors(_visitor_label(args.keep), _visitor_label(args.other)))
    emit({"merged": _visitor_label(args.other), **_visitor_json(visitor)})
    return 0


def cmd_forget_visitor(args: argparse.Namespace) -> int:
    label = _visitor_label(args.id)

    def forget(gallery) -> int:
        from core.store.gallery import VISITOR, GalleryError

        person = gallery.person(label)
        if person is None or person.kind != VISITOR:
            raise GalleryError(f"no visitor called {label!r} in the gallery")
        return gallery.forget(label)

    emit({"forgotten": label, "photos_deleted": _gallery_change(args.gallery, forget)})
    return 0


def cmd_forget_visitors(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        raise UsageError("--older-than must be at least 0 days")
    emit({"visitors_forgotten": _gallery_change(args.gallery, lambda g: g.forget_visitors(args.older_than))})
    return 0


def _keypoint_data_dir(path: str) -> Path:
    data_dir = Path(path)
    if not data_dir.is_dir():
        raise UsageError(f"data folder {data_dir} does not exist")
    return data_dir


def cmd_train_keypoints(args: argparse.Namespace) -> int:
    from core.analysis.keypoints_train import train

    data_dir = _keypoint_data_dir(args.data)
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if not 0 <= args.augment_strength <= 2:
        raise UsageError("--augment-strength must lie between 0 and 2")
    try:
        meta = train(data_dir, Path(args.out), epochs=args.epochs, patience=args.patience, limit=args.limit,
                     learning_rate=args.learning_rate, init=Path(args.init) if args.init else None,
                     augment_strength=args.augment_strength, flip=not args.no_flip)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
    emit({key: value for key, value in meta.items() if key != "history"})
    return 0


def cmd_eval_keypoints(args: argparse.Namespace) -> int:
    from core.analysis.keypoints_train import evaluate

    data_dir = _keypoint_data_dir(args.data)
    try:
        emit(evaluate(data_dir, Path(args.weights), detector_path=not args.crops_only, flip=args.flip))
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    return 0


def cmd_calibrate_keypoints(args: argparse.Namespace) -> int:
    from core.analysis.detect import DETECTORS
    from core.analysis.keypoints_train import calibrate

    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    photos = expand_inputs(args.photos)
    try:
        emit(calibrate(Path(args.weights), photos, args.detector, args.pad))
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    from core.images import ImageError, load_image
    from core.style.gatys import StyleSettings, StyleTransferError, WeightsUnavailable, stylize

    output = _output_file(args.output, WRITTEN_IMAGE_SUFFIXES, [Path(args.content), Path(args.style)])
    try:
        content, style = load_image(args.content), load_image(args.style)
        settings = StyleSettings(
            size=args.size, iterations=args.iterations, style_weight=args.style_weight,
            content_weight=args.content_weight, tv_weight=args.tv_weight, init=args.init,
            optimizer=args.optimizer, backbone=args.backbone, preserve_colors=args.preserve_colors,
        ).checked()
        print(f"stylize: {settings.backbone}, {settings.size} px, {settings.iterations} iterations", file=sys.stderr)
        result = stylize(content, style, settings, on_step=lambda step: print(
            f"iteration {step.losses.iteration}: loss {step.losses.total:.4g}", file=sys.stderr, flush=True))
    except (ImageError, StyleTransferError, WeightsUnavailable) as error:
        raise UsageError(str(error)) from error
    _write_image(output, result.image_bgr)
    emit({"content": args.content, "style": args.style, "output": str(output), **result.to_json()})
    return 0


def cmd_styles(args: argparse.Namespace) -> int:
    from core.images import ImageError, load_image
    from core.style import fast

    reason = fast.unavailable()
    if reason:
        raise UsageError(f"fast styles are unavailable: {reason}")
    record: dict[str, Any] = {"styles": [{"number": i, "name": f"style {i}"} for i in range(fast.NUM_STYLES)],
                              "default": fast.DEFAULT_STYLE, "regions": fast.REGIONS}  # fmt: skip
    if args.sheet:
        sheet = _output_file(args.sheet, WRITTEN_IMAGE_SUFFIXES, [Path(args.photo)] if args.photo else [])
        try:
            photo = load_image(args.photo) if args.photo else _example_photo()
        except ImageError as error:
            raise UsageError(str(error)) from error
        _write_image(sheet, fast.contact_sheet(photo))
        record["sheet"] = str(sheet)
    emit(record)
    return 0


def _example_photo():
    from core.images import load_image
    from core.style.gatys import example_images

    photos = example_images("content")
    if not photos:
        raise UsageError("no example photo in ../shared/data: give one with --photo")
    return load_image(next(iter(photos.values())))


def cmd_stylize_fast(args: argparse.Namespace) -> int:
    import time

    from core.analysis.processors import ProcessorUnavailable
    from core.images import ImageError, load_image
    from core.stream.photo import style_pipeline
    from core.stream.video import VideoError, annotate_video
    from core.style.fast import FastStyleError

    source = Path(args.input)
    still = source.suffix.lower() in IMAGE_SUFFIXES
    output = _output_file(args.output, WRITTEN_IMAGE_SUFFIXES if still else (".mp4",), [source])
    painting = args.style if Path(args.style).is_file() else None
    if painting and args.blend:
        raise UsageError("--blend mixes built-in styles; a painting cannot be blended")
    style = None if painting else args.style
    if args.blend:
        number, _, share = args.blend.partition(":")
        try:
            share_value = float(share or 0.5)
        except ValueError as error:
            raise UsageError(f"--blend is M:SHARE, e.g. 19:0.3, not {args.blend!r}") from error
        if not 0.0 <= share_value <= 1.0:
            raise UsageError("--blend's share lies between 0 and 1")
        style = f"{args.style}:{1 - share_value:g},{number}:{share_value:g}"
    options = {"style": style, "painting": painting, "size": args.size, "region": args.region,
               "face_style": args.face_style if args.region == "split" else None}  # fmt: skip
    try:
        pipeline = style_pipeline(options, tracking=not still)
    except (FastStyleError, ImageError, ProcessorUnavailable) as error:
        raise UsageError(str(error)) from error
    start = time.perf_counter()
    if still:
        try:
            image = load_image(source)
        except ImageError as error:
            raise UsageError(str(error)) from error
        painted, result = pipeline.annotate(image)
        _write_image(output, painted)
        summary = {"input": str(source), "output": str(output), "frames": 1, "faces": len(result.faces)}
    else:
        try:
            summary = annotate_video(source, output, pipeline)
        except VideoError as error:
            raise UsageError(str(error)) from error
        summary = {key: summary[key] for key in ("input", "output", "frames", "width", "height", "fps")}
    seconds = time.perf_counter() - start
    _raise_stage_errors(pipeline)
    emit({**summary, **{k: v for k, v in options.items() if v is not None}, "seconds": round(seconds, 3),
          "fps_reached": round(summary["frames"] / seconds, 2)})  # fmt: skip
    return 0


def _gallery(path: str | None, write: bool = False, create: bool = False):
    """The gallery at ``path`` (default: the app's), opened read-only unless ``write``; a missing
    file is an error unless ``create`` (then the first write creates it: a refused enrollment
    leaves nothing behind)."""
    from core.store.gallery import GalleryError, default_gallery_location, is_url, open_gallery, shown

    location = path or default_gallery_location()
    if not create and not is_url(location) and not Path(location).is_file():
        raise UsageError(f"no gallery at {location}: enroll somebody first (python -m core enroll)")
    try:
        gallery = open_gallery(location, readonly=not write)
        version = gallery.version()  # a wrong URL, refused credentials or a stranger's database are said now
    except GalleryError as error:
        raise UsageError(str(error)) from error
    if not create and version == 0:
        gallery.close()
        raise UsageError(f"no gallery at {shown(location)}: enroll somebody first (python -m core enroll)")
    return gallery


def _enroll_and_emit(gallery, name: str, paths: Sequence[Path], largest_face: bool) -> int:
    """Enroll ``paths`` under ``name`` (one transaction) and print one line per photo; photos accepted."""
    from core.analysis.recognition import enroll

    outcome = enroll(gallery, name, [(str(p), p) for p in paths], largest_face=largest_face)
    for photo in outcome.photos:
        emit({"person": outcome.name, **photo.to_json()})
    return outcome.accepted


def cmd_enroll(args: argparse.Namespace) -> int:
    from core.store.gallery import GalleryError, validate_name

    try:
        name = validate_name(args.name)
    except GalleryError as error:
        raise UsageError(f"--name: {error}") from error
    paths = expand_inputs(args.images)
    with _gallery(args.gallery, write=True, create=True) as gallery:
        return 0 if _enroll_and_emit(gallery, name, paths, args.largest_face) else 1


def cmd_enroll_dir(args: argparse.Namespace) -> int:
    from core.store.gallery import GalleryError, validate_name

    root = Path(args.folder)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (expected one sub-folder of photos per person)")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise UsageError(f"{root} has no sub-folders (expected one sub-folder of photos per person)")
    failures = 0
    with _gallery(args.gallery, write=True, create=True) as gallery:
        for folder in folders:
            try:
                name = validate_name(folder.name.replace("_", " "))
                paths = expand_inputs([str(folder)])
            except (GalleryError, UsageError) as error:
                failures += 1
                emit({"person": folder.name, "error": str(error)})
                continue
            failures += not _enroll_and_emit(gallery, name, paths, args.largest_face)
    return 1 if failures else 0


def cmd_people(args: argparse.Namespace) -> int:
    from core.analysis.recognition import active_encoder, gallery_tolerance

    with _gallery(args.gallery) as gallery:
        people = [{"name": p.name, "photos": p.photos} for p in gallery.people()]
        emit({"gallery": gallery.location, "encoder": active_encoder(), "tolerance": gallery_tolerance(gallery),
              "photos_by_encoder": gallery.encoder_counts(), "people": people})
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from core.store.gallery import GalleryError

    with _gallery(args.gallery, write=True) as gallery:
        try:
            deleted = gallery.forget(args.name)
        except GalleryError as error:
            raise UsageError(str(error)) from error
        emit({"forgotten": args.name.strip(), "photos_deleted": deleted})
    return 0


def cmd_recognize(args: argparse.Namespace) -> int:
    from core.analysis.recognition import recognize
    from core.images import ImageError, load_image

    if args.tolerance is not None and not 0.0 < args.tolerance <= 1.0:
        raise UsageError("--tolerance must lie in (0, 1]")
    failures = 0
    with _gallery(args.gallery) as gallery:
        for path in expand_inputs(args.images):
            try:
                faces = recognize(gallery, load_image(path), args.tolerance)
            except ImageError as error:
                failures += 1
                emit({"image": str(path), "error": str(error)})
                continue
            emit({"image": str(path), "faces": [{key: f.to_json()[key] for key in ("box", "name", "distance")} for f in faces]})
    return 1 if failures else 0


def cmd_effects(args: argparse.Namespace) -> int:
    from core.analysis.effects import EFFECTS

    emit({"effects": [{"name": e.name, "label": e.label, "kind": e.kind} for e in EFFECTS.values()]})
    return 0


def add_effect_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--effects", metavar="NAME[,NAME]", help="face effects to draw (python -m core effects lists them), e.g. sunglasses,crown or blur")
    command.add_argument("--who", default="all", help="the faces that get the effects: all (default), unknown (no name from the gallery) or named")


def cmd_watch(args: argparse.Namespace) -> int:
    """A live source, one JSON line per second (state, fps, faces, names, latency), then a summary.
    A source that never goes live is one JSON error line and exit 1; a drop later is reconnected."""
    import time

    from core.analysis.detect import DETECTORS
    from core.analysis.processors import build_processors
    from core.stream.pipeline import PipelineConfig
    from core.stream.sources import NetworkSource, ProcessedFrame, SourceError, SourceStream, percentile

    if args.detector not in DETECTORS:
        raise UsageError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be above 0")
    record = _output_file(args.record, (".mp4",), []) if args.record else None
    names = [name.strip() for name in args.processors.split(",") if name.strip()]
    if args.gallery and "recognition" in names:
        _gallery(args.gallery).close()  # a missing gallery is a usage error, not an empty gallery
    processors, unavailable = build_processors(names, {"recognition": {"gallery": args.gallery}})
    if unavailable:
        raise UsageError("; ".join(unavailable.values()))
    try:
        source = NetworkSource(args.url)
    except SourceError as error:
        raise UsageError(str(error)) from error
    latencies: list[float] = []
    first_done = last_done = 0.0  # when the first and the last frame were annotated
    tracks: set[int] = set()
    seen: set[str] = set()

    def collect(frame: ProcessedFrame) -> None:  # on the stream's thread; read here after stop()
        nonlocal first_done, last_done
        last_done = time.monotonic()
        first_done = first_done or last_done
        latencies.append(frame.latency_ms)
        tracks.update(face.track_id for face in frame.result.faces if face.track_id is not None)
        seen.update(face.name for face in frame.result.faces if face.name)

    stream = SourceStream(source, PipelineConfig(detector=args.detector, processors=processors), collect, window_s=1.0).start()
    if record is not None:
        stream.start_recording(record)
    start, ticks, snapshot = time.monotonic(), 0, stream.snapshot()
    try:
        while args.seconds is None or ticks < args.seconds:
            ticks += 1
            time.sleep(max(0.0, start + min(ticks, args.seconds or ticks) - time.monotonic()))
            snapshot = stream.snapshot()
            if snapshot["frames"] == 0 and snapshot["state"] in ("failed", "reconnecting"):
                stream.stop()
                emit({"url": source.url, "state": snapshot["state"], "error": snapshot["reason"]})
                return 1
            emit({"t": round(time.monotonic() - start, 1), "state": snapshot["state"], "fps": snapshot["fps"],
                  "faces": snapshot["faces"], "names": snapshot["names"], "latency_ms": snapshot["latency_ms"],
                  **({"message": snapshot["message"]} if snapshot["state"] != "live" else {})})  # fmt: skip
            if snapshot["state"] == "failed":
                break
    except KeyboardInterrupt:
        pass
    seconds = time.monotonic() - start
    recording = stream.stop()
    final = source.status()
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    fps = (len(latencies) - 1) / (last_done - first_done) if last_done > first_done else 0.0
    emit({"summary": True, "url": source.url, "state": snapshot["state"], "seconds": round(seconds, 1),
          "frames_received": final.frames, "frames_processed": len(latencies), "fps": round(fps, 1),
          "faces_seen": len(tracks), "names_seen": sorted(seen),
          "latency_ms": {"p50": p50 and round(p50, 1), "p95": p95 and round(p95, 1)},
          "reconnects": final.reconnects, "processors": [p.name for p in processors], "detector": args.detector,
          "recording": recording, "errors": stream.stats.snapshot()["errors"]})  # fmt: skip
    return 1 if snapshot["state"] == "failed" else 0


def cmd_models(args: argparse.Namespace) -> int:
    from core.models import model_status

    emit({"models": [status.to_json() for status in model_status()]})
    return 0


def build_parser() -> argparse.ArgumentParser:
    from core.analysis.detect import DEFAULT_DETECTOR, DETECTORS  # OpenCV only: the parser stays quick

    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser("analyze", help="detect and describe the faces in images (JSON Lines)")
    analyze.add_argument("images", nargs="+", metavar="IMAGE", help="image file, folder of images, or @list.txt")
    analyze.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"face detector: {', '.join(DETECTORS)} (default: {DEFAULT_DETECTOR})")
    analyze.add_argument("--gallery", metavar="DB", help="gallery for recognition (default: the app's gallery)")
    add_effect_options(analyze)
    analyze.add_argument("--annotated", metavar="OUT", help="also write the annotated image: a file for one image, a folder for several")
    analyze.set_defaults(run=cmd_analyze)

    video = commands.add_parser("annotate-video", help="annotate every frame of a video into an MP4 (JSON summary)")
    video.add_argument("input", metavar="IN", help="video file (mp4, mov, mkv, webm, avi...; at most 500 MB, 10 minutes)")
    video.add_argument("output", metavar="OUT", help="annotated MP4 to write (H.264, audio kept)")
    video.add_argument("--gallery", metavar="DB", help="gallery for recognition (default: the app's gallery)")
    video.add_argument(
        "--processors", default="recognition", help="comma-separated processors in the catalogue (default: recognition; '' for boxes only)"
    )
    video.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"face detector: {', '.join(DETECTORS)} (default: {DEFAULT_DETECTOR})")
    add_effect_options(video)
    video.add_argument("--visitors", action="store_true", help="group the faces nobody is enrolled as into visitors (Visitor 1, 2, ...) in the gallery")
    video.add_argument("--retention-days", type=float, default=30.0, help="with --visitors: forget visitors not seen for this many days (default 30; 0: keep)")
    video.set_defaults(run=cmd_annotate_video)

    watch = commands.add_parser("watch", help="annotate a live camera or a looped video file, one JSON line per second")
    watch.add_argument("url", metavar="URL", help="rtsp://, rtmp://, http(s):// (MJPEG, HLS) URL, or a video file played in a loop")
    watch.add_argument("--processors", default="recognition", help="comma-separated processors in the catalogue (default: recognition; '' for boxes only)")
    watch.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"face detector: {', '.join(DETECTORS)} (default: {DEFAULT_DETECTOR})")
    watch.add_argument("--gallery", metavar="DB", help="gallery for recognition (default: the app's gallery)")
    watch.add_argument("--record", metavar="OUT.mp4", help="also record the annotated stream (H.264; the Video page's 10 minute and 500 MB limits)")
    watch.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    watch.set_defaults(run=cmd_watch)

    default_data, default_weights = str(SHARED_DATA / "facial_keypoints"), str(WEIGHTS_DIR / "keypoints.keras")
    train_kp = commands.add_parser("train-keypoints", help="train the facial keypoint CNN (progress on stderr)")
    train_kp.add_argument("--data", default=default_data, help="folder with yt68_training.npz or Kaggle's training.csv")
    train_kp.add_argument("--out", default=default_weights, help="weights to write (.keras; .json and _curve.png beside)")
    train_kp.add_argument("--epochs", type=int, default=36)
    train_kp.add_argument("--patience", type=int, default=10, help="early stopping: epochs without validation progress")
    train_kp.add_argument("--limit", type=int, help="train on the first N samples only (smoke runs)")
    train_kp.add_argument("--learning-rate", type=float, default=2e-3, help="peak of the warm-up + cosine schedule")
    train_kp.add_argument("--init", metavar="WEIGHTS", help="start from these .keras weights (fine-tuning)")
    train_kp.add_argument("--augment-strength", type=float, default=1.0,
                          help="scale of the random rotation, scale and shift (1.0: +-15 deg, +-10 %%, +-6 %%; "
                               "0.3 suits a last fine-tuning stage)")
    train_kp.add_argument("--no-flip", action="store_true",
                          help="no horizontal flips: the model learns the data's own left/right labelling habits "
                               "(a last fine-tuning stage; flips teach a mirror-symmetric average)")
    train_kp.set_defaults(run=cmd_train_keypoints)

    eval_kp = commands.add_parser("eval-keypoints", help="RMSE of the keypoint CNN on the held-out yt68_test.npz")
    eval_kp.add_argument("--data", default=default_data, help="folder with yt68_test.npz")
    eval_kp.add_argument("--weights", default=default_weights)
    eval_kp.add_argument("--crops-only", action="store_true", help="skip the run through the real face detector")
    eval_kp.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                         help="test-time flip averaging (default: as the app does it for these weights)")
    eval_kp.set_defaults(run=cmd_eval_keypoints)

    calibrate_kp = commands.add_parser(
        "calibrate-keypoints", help="fit the keypoints' real-photo correction against dlib's 68 points (JSON summary)")
    calibrate_kp.add_argument("photos", nargs="+", metavar="IMAGE", help="real photos: files, folders, @list.txt")
    calibrate_kp.add_argument("--weights", default=default_weights)
    calibrate_kp.add_argument("--detector", default=DEFAULT_DETECTOR)
    calibrate_kp.add_argument("--pad", type=int, default=0, help="pixels of border added around each photo (tight crops)")
    calibrate_kp.set_defaults(run=cmd_calibrate_keypoints)

    from core.style.gatys import BACKBONES, INITS, OPTIMIZERS, StyleSettings  # no TensorFlow at import

    defaults = StyleSettings()
    style = commands.add_parser("stylize", help="neural style transfer of CONTENT in the style of STYLE (JSON summary)")
    style.add_argument("content", metavar="CONTENT", help="photo whose content is kept")
    style.add_argument("style", metavar="STYLE", help="painting whose style is transferred")
    style.add_argument("output", metavar="OUT", help="image to write (.png, .jpg or .webp)")
    style.add_argument("--size", type=int, default=defaults.size, help="longer side of the result in pixels (default 256)")
    style.add_argument("--iterations", type=int, default=defaults.iterations, help="optimizer iterations (default 100)")
    style.add_argument("--style-weight", type=float, default=defaults.style_weight)
    style.add_argument("--content-weight", type=float, default=defaults.content_weight)
    style.add_argument("--tv-weight", type=float, default=defaults.tv_weight, help="total-variation (smoothness) weight")
    style.add_argument("--init", choices=INITS, default=defaults.init)
    style.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    style.add_argument("--backbone", choices=BACKBONES,
                       help="default: vgg19 when its ImageNet weights are downloaded, else vgg16-hed (offline)")
    style.add_argument("--preserve-colors", action="store_true", help="keep the content photo's colours")
    style.set_defaults(run=cmd_stylize)

    fast_style = commands.add_parser("stylize-fast", help="paint an image or a video in a feed-forward style (JSON summary)")
    fast_style.add_argument("input", metavar="IN", help="image (.jpg, .png, ...) or video")
    fast_style.add_argument("output", metavar="OUT", help="image to write for an image, MP4 for a video")
    fast_style.add_argument("--style", default="12", help="a built-in style 0-25 (python -m core styles), a blend like 3:0.7,12:0.3, or a painting's image file")
    fast_style.add_argument("--blend", metavar="M:SHARE", help="blend another built-in style in, e.g. 19:0.3")
    fast_style.add_argument("--size", type=int, default=320, help="processing size, the longer side in pixels (default 320)")
    fast_style.add_argument("--region", default="all", help="all (default), background (faces kept natural), faces, or split (faces in --face-style)")
    fast_style.add_argument("--face-style", default="10", help="the faces' style with --region split (default 10)")
    fast_style.set_defaults(run=cmd_stylize_fast)

    styles = commands.add_parser("styles", help="the 26 built-in fast styles (JSON), with a contact sheet on request")
    styles.add_argument("--sheet", metavar="OUT.png", help="write the 26 styles on one photo, numbered")
    styles.add_argument("--photo", help="the sheet's photo (default: the first example photo of ../shared/data)")
    styles.set_defaults(run=cmd_styles)

    gallery_help = "gallery file or postgresql:// URL (default: $VISION_LAB_GALLERY or ~/.local/share/vision-lab/gallery.sqlite3)"
    largest_help = "when a photo shows several faces, enroll the largest, the most central among equals (default: reject the photo)"
    enroll = commands.add_parser("enroll", help="add photos of one person to the gallery (JSON Lines, one per photo)")
    enroll.add_argument("images", nargs="+", metavar="IMAGE", help="image file, folder of images, or @list.txt")
    enroll.add_argument("--name", required=True, help="the person's name (created when new)")
    enroll.add_argument("--gallery", metavar="DB", help=gallery_help)
    enroll.add_argument("--largest-face", action="store_true", help=largest_help)
    enroll.set_defaults(run=cmd_enroll)

    enroll_dir = commands.add_parser("enroll-dir", help="enroll one sub-folder of photos per person (name = folder, _ = space)")
    enroll_dir.add_argument("folder", metavar="DIR")
    enroll_dir.add_argument("--gallery", metavar="DB", help=gallery_help)
    enroll_dir.add_argument("--largest-face", action="store_true", help=largest_help)
    enroll_dir.set_defaults(run=cmd_enroll_dir)

    people = commands.add_parser("people", help="list the people in the gallery")
    people.add_argument("--gallery", metavar="DB", help=gallery_help)
    people.set_defaults(run=cmd_people)

    forget = commands.add_parser("forget", help="delete a person with every photo and encoding")
    forget.add_argument("--name", required=True)
    forget.add_argument("--gallery", metavar="DB", help=gallery_help)
    forget.set_defaults(run=cmd_forget)

    visitors = commands.add_parser("visitors", help="the visitors: unknown faces grouped as they were seen (JSON Lines)")
    visitors.add_argument("--gallery", metavar="DB", help=gallery_help)
    visitors.set_defaults(run=cmd_visitors)
    name_visitor = commands.add_parser("name-visitor", help="make a visitor a person, with their photos")
    name_visitor.add_argument("id", metavar="ID", help="the visitor's number (7) or label ('Visitor 7')")
    name_visitor.add_argument("--name", required=True)
    name_visitor.add_argument("--gallery", metavar="DB", help=gallery_help)
    name_visitor.set_defaults(run=cmd_name_visitor)
    merge = commands.add_parser("merge-visitors", help="merge visitor OTHER into KEEP (one person seen as two)")
    merge.add_argument("keep", metavar="KEEP")
    merge.add_argument("other", metavar="OTHER")
    merge.add_argument("--gallery", metavar="DB", help=gallery_help)
    merge.set_defaults(run=cmd_merge_visitors)
    forget_visitor = commands.add_parser("forget-visitor", help="delete a visitor with every photo and encoding")
    forget_visitor.add_argument("id", metavar="ID")
    forget_visitor.add_argument("--gallery", metavar="DB", help=gallery_help)
    forget_visitor.set_defaults(run=cmd_forget_visitor)
    forget_visitors = commands.add_parser("forget-visitors", help="delete every visitor not seen for N days")
    forget_visitors.add_argument("--older-than", type=float, required=True, metavar="DAYS", help="0: every visitor")
    forget_visitors.add_argument("--gallery", metavar="DB", help=gallery_help)
    forget_visitors.set_defaults(run=cmd_forget_visitors)

    recognize = commands.add_parser("recognize", help="name the faces in images from the gallery (JSON Lines)")
    recognize.add_argument("images", nargs="+", metavar="IMAGE", help="image file, folder of images, or @list.txt")
    recognize.add_argument("--gallery", metavar="DB", help=gallery_help)
    recognize.add_argument("--tolerance", type=float, help="largest distance at which a face is named (default: the gallery's saved tolerance, else the built-in default)")
    recognize.set_defaults(run=cmd_recognize)

    effects = commands.add_parser("effects", help="the face effects --effects takes (JSON)")
    effects.set_defaults(run=cmd_effects)

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
