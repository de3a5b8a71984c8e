"""The catalogue of pipeline processors that the Live page, the Video page and the CLI offer.

Each :class:`ProcessorSpec` names a processor, says in one cheap call whether it can run here
(``unavailable``: ``None`` or the reason, without loading any model), and builds it. Building
loads models, so :func:`get_processor` builds each (name, options) at most once per process,
under a lock, and the instance is shared by every session and thread: models load once, in the
UI thread or a command, never inside a frame callback.

:func:`ready_processors` is the non-blocking twin for a page that must stay responsive: it
returns the processors already built and builds the others on a background thread, so ticking a
processor whose model takes seconds to load never freezes the page or the stream.

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


Key = tuple[str, tuple[tuple[str, Any], ...]]  # (name, sorted options)

_specs: dict[str, ProcessorSpec] = {}
_instances: dict[Key, Processor] = {}
_failed: dict[Key, str] = {}  # background builds that raised: why, reported as unavailable
_loaders: dict[Key, threading.Thread] = {}
_lock = threading.Lock()  # one build at a time; reading a built instance never takes it
_loaders_lock = threading.Lock()  # one loader thread per key


def register(spec: ProcessorSpec) -> ProcessorSpec:
    _specs[spec.name] = spec
    return spec


def processor_specs() -> list[ProcessorSpec]:
    """Every known processor, in the order of :data:`PROCESSOR_MODULES`."""
    for module in PROCESSOR_MODULES:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(PROCESSOR_MODULES)}  # not import order: a test may import one first
    return sorted(_specs.values(), key=lambda spec: rank.get(spec.build.__module__, len(rank)))


def why_unavailable(name: str) -> str | None:
    """Why ``name`` cannot be built here (unknown, or its spec's reason), or None; loads nothing."""
    specs = {spec.name: spec for spec in processor_specs()}
    if name not in specs:
        return f"unknown processor {name!r}; known: {', '.join(specs) or 'none'}"
    reason = specs[name].unavailable()
    return f"{specs[name].label} is unavailable: {reason}" if reason else None


def get_processor(name: str, **options: Any) -> Processor:
    """The shared processor ``name`` built with ``options``; raises :class:`ProcessorUnavailable`."""
    key = (name, tuple(sorted(options.items())))
    if key in _instances:  # built: never wait for another processor's build
        return _instances[key]
    reason = why_unavailable(name)
    if reason:
        raise ProcessorUnavailable(reason)
    with _lock:
        if key not in _instances:
            _instances[key] = _specs[name].build(**options)
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
    built: list[Processor] = []
    missing: dict[str, str] = {}
    for name, own in _wanted(names, options):
        try:
            built.append(get_processor(name, **own))
        except ProcessorUnavailable as error:  # unknown names included
            missing[name] = str(error)
    return tuple(built), missing


def ready_processors(
    names: Sequence[str] | None = None, options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[tuple[Processor, ...], dict[str, str], list[str]]:
    """:func:`build_processors` without waiting: (the processors already built, {name: why it
    cannot run}, the names still loading). Each one still loading is built on a background thread
    (one at a time, each once); call again to collect it. A build that raised is reported as
    unavailable from then on."""
    built: list[Processor] = []
    missing: dict[str, str] = {}
    loading: list[str] = []
    for name, own in _wanted(names, options):
        key = (name, tuple(sorted(own.items())))
        if key in _instances:
            built.append(_instances[key])
            continue
        reason = _failed.get(key) or why_unavailable(name)
        if reason:
            missing[name] = reason
            continue
        loading.append(name)
        with _loaders_lock:
            if key not in _loaders:
                _loaders[key] = threading.Thread(target=_load, args=(key, name, own), name=f"load-{name}", daemon=True)
                _loaders[key].start()
    return tuple(built), missing, loading


def _load(key: Key, name: str, options: dict[str, Any]) -> None:
    """A background build: the instance lands in the shared cache, or the reason in ``_failed``."""
    try:
        get_processor(name, **options)
    except Exception as error:  # noqa: BLE001  (a model file that fails to load: said on the page, never a crash)
        _failed[key] = str(error) if isinstance(error, ProcessorUnavailable) else f"{name} could not be loaded: {error}"


def _wanted(names: Sequence[str] | None, options: Mapping[str, Mapping[str, Any]] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, its own options) for ``names`` (None: those on by default, and those ``options``
    configures), in catalogue order."""
    specs = processor_specs()
    order = {spec.name: i for i, spec in enumerate(specs)}
    if names is None:
        names = [spec.name for spec in specs if spec.by_default or spec.name in (options or {})]
    return [(name, dict((options or {}).get(name, {}))) for name in sorted(names, key=lambda name: order.get(name, len(order)))]
