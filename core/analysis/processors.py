"""The catalogue of pipeline processors that the Live page, the Video page and the CLI offer.

Each :class:`ProcessorSpec` names a processor, says in one cheap call whether it can run here
(``unavailable``: ``None`` or the reason, without loading any model), and builds it. Building
loads models, so :func:`get_processor` builds each (name, options) at most once per process,
under a lock, and the instance is shared by every session and thread: models load once, in the
UI thread or a command, never inside a frame callback.

A module adding a processor registers its spec at import time with :func:`register`, and is
listed in :data:`PROCESSOR_MODULES` so the catalogue is complete wherever it is read.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.faces import Processor
from core.models import settle_after_loading

# Modules that register processors when imported, in the order the UI lists them.
# Style and effects come last: they read what the others found (keypoints, names), and effects
# are drawn over the painted frame.
PROCESSOR_MODULES: tuple[str, ...] = ("core.analysis.keypoints", "core.analysis.recognition", "core.analysis.age_gender",
                                      "core.analysis.objects", "core.analysis.styling", "core.analysis.effects")  # fmt: skip


@dataclass(frozen=True)
class ProcessorSpec:
    name: str
    label: str
    description: str
    build: Callable[..., Processor]
    unavailable: Callable[[], str | None] = lambda: None
    by_default: bool = True  # run when the caller asks for "every processor" (effects: only when asked)


class ProcessorUnavailable(RuntimeError):
    """A processor that cannot run here; the message says why and what to do."""


_specs: dict[str, ProcessorSpec] = {}
_instances: dict[tuple[str, tuple[tuple[str, Any], ...]], Processor] = {}
_lock = threading.Lock()


def register(spec: ProcessorSpec) -> ProcessorSpec:
    _specs[spec.name] = spec
    return spec


def processor_specs() -> list[ProcessorSpec]:
    """Every known processor, in the order of :data:`PROCESSOR_MODULES`."""
    for module in PROCESSOR_MODULES:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(PROCESSOR_MODULES)}  # not import order: a test may import one first
    return sorted(_specs.values(), key=lambda spec: rank.get(spec.build.__module__, len(rank)))


def get_processor(name: str, **options: Any) -> Processor:
    """The shared processor ``name`` built with ``options``; raises :class:`ProcessorUnavailable`."""
    specs = {spec.name: spec for spec in processor_specs()}
    if name not in specs:
        raise ProcessorUnavailable(f"unknown processor {name!r}; known: {', '.join(specs) or 'none'}")
    key = (name, tuple(sorted(options.items())))
    with _lock:
        if key not in _instances:
            reason = specs[name].unavailable()
            if reason:
                raise ProcessorUnavailable(f"{specs[name].label} is unavailable: {reason}")
            _instances[key] = specs[name].build(**options)
            settle_after_loading()
        return _instances[key]


def build_processors(
    names: Sequence[str] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[tuple[Processor, ...], dict[str, str]]:
    """The processors ``names`` (``None``: every one on by default, and those ``options``
    configures), in catalogue order, each built by :func:`get_processor` with its own ``options[name]``.

    Returns (the processors built, {name: why it cannot run} for the rest, unknown names included);
    callers decide whether a missing one is a note (analyze every available processor) or an error.
    """
    specs = processor_specs()
    order = {spec.name: i for i, spec in enumerate(specs)}
    if names is None:
        names = [spec.name for spec in specs if spec.by_default or spec.name in (options or {})]
    wanted = sorted(names, key=lambda name: order.get(name, len(order)))
    built: list[Processor] = []
    missing: dict[str, str] = {}
    for name in wanted:
        try:
            built.append(get_processor(name, **dict((options or {}).get(name, {}))))
        except ProcessorUnavailable as error:  # unknown names included
            missing[name] = str(error)
    return tuple(built), missing
