"""The Home page (an AppTest of the whole app, whose default page it is): the page cards, and the
model summary with the unavailable models first."""

import pytest
from streamlit.testing.v1 import AppTest

import core.models
from core.models import ModelStatus
from tests.conftest import REPO


def home(monkeypatch, statuses: list[ModelStatus]) -> AppTest:
    monkeypatch.setattr(core.models, "model_status", lambda: statuses)
    app = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120).run()
    assert not app.exception
    return app


READY = ModelStatus("Detector A", "face detection", True, "bundled")
MISSING = ModelStatus("Classifier B", "object labels", False, "downloaded once", "not downloaded yet; needs internet once")


def test_home_links_every_page_in_the_suggested_order(monkeypatch):
    app = home(monkeypatch, [READY])
    links = [link.proto.page for link in app.get("page_link")]
    assert links == ["people", "live", "photo", "video", "style"]  # the URL paths of the pages
    assert "enroll two people on **People**" in app.markdown[0].value


def test_home_names_the_unavailable_models_first_and_why(monkeypatch):
    app = home(monkeypatch, [READY, MISSING, READY])
    assert app.warning[0].value == "2 of 3 models are ready. 1 cannot be used yet:"
    assert any("Classifier B" in m.value and "needs internet once" in m.value for m in app.markdown)
    table = app.dataframe[0].value
    assert list(table["Status"]) == ["unavailable", "ready", "ready"]
    assert table["Model"].iloc[0] == "Classifier B"


@pytest.mark.parametrize("count", [1, 4])
def test_home_says_when_every_model_is_ready(monkeypatch, count):
    app = home(monkeypatch, [READY] * count)
    assert not app.warning
    assert app.success[0].value == f"All {count} models are ready."
