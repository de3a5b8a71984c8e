"""The processor catalogue: each processor built once and shared, the reasons of those that cannot
run, and the background loading through which a page asks for processors and never waits."""

from __future__ import annotations

import threading
import time

import pytest

from core.analysis import processors
from core.analysis.processors import ProcessorSpec, ProcessorUnavailable, build_processors, get_processor, processor_specs, ready_processors
from core.faces import FrameResult, Processor


class Tagger(Processor):
    name = "tagger"
    label = "Tagger"

    def __init__(self, tag: str = "x") -> None:
        self.tag = tag

    def process(self, frame_bgr, result: FrameResult) -> None:
        for face in result.faces:
            face.name = self.tag


@pytest.fixture
def empty_catalogue(monkeypatch):
    for name, value in (("_specs", {}), ("_instances", {}), ("_failed", {}), ("_loaders", {}), ("PROCESSOR_MODULES", ())):
        monkeypatch.setattr(processors, name, value)


@pytest.fixture
def registry(empty_catalogue):
    builds = []

    def build(**options):
        builds.append(options)
        return Tagger(**options)

    processors.register(ProcessorSpec("tagger", "Tagger", "names every face", build))
    processors.register(ProcessorSpec("broken", "Broken", "never runs", build, unavailable=lambda: "no weights in weights/"))
    return builds


def test_each_processor_is_built_once_per_options_and_shared(registry):
    assert [s.name for s in processor_specs()] == ["tagger", "broken"]
    first = get_processor("tagger")
    assert get_processor("tagger") is first
    other = get_processor("tagger", tag="y")
    assert other is not first and other.tag == "y"
    assert registry == [{}, {"tag": "y"}]


def test_unavailable_and_unknown_processors_say_why(registry):
    with pytest.raises(ProcessorUnavailable, match="Broken is unavailable: no weights in weights/"):
        get_processor("broken")
    with pytest.raises(ProcessorUnavailable, match="unknown processor 'nope'"):
        get_processor("nope")
    assert registry == []  # nothing was built


released = threading.Event()


class Slow(Processor):
    """A processor whose model takes until ``released`` is set to load."""

    name = "slow"
    label = "Slow"

    def __init__(self, size: int = 1) -> None:
        assert released.wait(10), "the test never released the build"
        self.size = size

    def process(self, frame_bgr, result: FrameResult) -> None:
        pass


class Quick(Slow):
    name = "quick"

    def __init__(self) -> None:
        self.size = 0


def broken() -> Processor:
    raise OSError("weights/model.keras is truncated")


@pytest.fixture
def catalogue(empty_catalogue):
    released.clear()
    processors.register(ProcessorSpec("quick", "Quick", "loads at once", Quick))
    processors.register(ProcessorSpec("slow", "Slow", "loads slowly", Slow))
    processors.register(ProcessorSpec("broken", "Broken", "fails to load", broken))
    processors.register(ProcessorSpec("absent", "Absent", "never here", Quick, unavailable=lambda: "no weights"))
    yield
    released.set()


def wait_loaded(names, options=None, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while True:
        built, missing, loading = ready_processors(names, options)
        if not loading or time.monotonic() > deadline:
            return built, missing, loading
        time.sleep(0.01)


def test_a_slow_model_loads_in_the_background_while_the_built_ones_are_returned_at_once(catalogue):
    get_processor("quick")
    started = time.monotonic()
    built, missing, loading = ready_processors(["slow", "quick", "absent"], {"slow": {"size": 3}})
    assert time.monotonic() - started < 0.5
    assert [p.name for p in built] == ["quick"] and loading == ["slow"]
    assert missing == {"absent": "Absent is unavailable: no weights"}

    # while it loads, asking again starts no second build, and built processors never wait for it
    assert ready_processors(["slow"], {"slow": {"size": 3}})[2] == ["slow"]
    assert get_processor("quick").name == "quick"
    assert len(processors._loaders) == 1

    released.set()
    built, _, loading = wait_loaded(["slow", "quick"], {"slow": {"size": 3}})
    assert loading == [] and [(p.name, p.size) for p in built] == [("quick", 0), ("slow", 3)]
    assert build_processors(["slow"], {"slow": {"size": 3}})[0][0] is built[1]  # the one shared instance


def test_a_model_that_fails_to_load_is_reported_as_unavailable_not_raised(catalogue):
    _, missing, loading = wait_loaded(["broken"])
    assert loading == []
    assert missing == {"broken": "broken could not be loaded: weights/model.keras is truncated"}
