import pytest

from core.analysis import processors
from core.analysis.processors import ProcessorSpec, ProcessorUnavailable, get_processor, processor_specs
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
def registry(monkeypatch):
    monkeypatch.setattr(processors, "PROCESSOR_MODULES", ())
    monkeypatch.setattr(processors, "_specs", {})
    monkeypatch.setattr(processors, "_instances", {})
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
