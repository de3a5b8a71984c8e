"""Visitors: unknown faces grouped into people as a stream shows them (real LFW faces through the
app's pipeline, on both stores), the quality gate, regrouping, and the commands."""

import json

import cv2
import numpy as np
import pytest

from core.analysis import recognition, visitors
from core.cli import main
from core.faces import Box
from core.store.gallery import NewPhoto, open_gallery
from core.stream.synthetic import appearance_clip
from tests.conftest import shared_data


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch):
    monkeypatch.setattr(recognition, "ENROLL_JITTERS", 0)


@pytest.fixture(scope="module")
def lfw():
    root = shared_data("faces_identities")
    return sorted(p for p in root.iterdir() if p.is_dir())


def play(location: str, appearances: list[list[np.ndarray]]) -> tuple[list[str | None], recognition.RecognitionProcessor]:
    """Each appearance through the pipeline, 12 empty frames apart (a new track each); the name the
    largest face shows at its end."""
    from core.stream.pipeline import FramePipeline, PipelineConfig

    processor = recognition.RecognitionProcessor(gallery=location, visitors=True, retention_days=0)
    pipeline = FramePipeline(PipelineConfig(detector="yunet", processors=(processor,), tracking=True))
    shown = []
    for frames in appearances:
        last = None
        for frame in frames:
            faces = pipeline.process(frame).faces
            last = max(faces, key=lambda f: f.box.width) if faces else last
        shown.append((last.name, last.visitor) if last else (None, False))
        for _ in range(12):
            pipeline.process(np.full((480, 640, 3), 110, np.uint8))
    return shown, processor


def test_a_stranger_seen_twice_is_the_same_visitor_and_an_enrolled_person_never_is(gallery_location, lfw):
    enrolled, stranger = lfw[0], lfw[-1]
    with open_gallery(gallery_location) as gallery:
        recognition.enroll(gallery, "Known Person", [(f"{n}.jpg", enrolled / f"{n}.jpg") for n in (1, 2, 3)], largest_face=True)
    shown, processor = play(gallery_location, [appearance_clip(stranger / "1.jpg", 16), appearance_clip(enrolled / "5.jpg", 16),
                                                appearance_clip(stranger / "6.jpg", 16)])  # fmt: skip
    assert shown == [("Visitor 1", True), ("Known Person", False), ("Visitor 1", True)]
    with open_gallery(gallery_location) as gallery:
        (visitor,) = gallery.visitors()
        assert visitor.name == "Visitor 1" and 1 <= visitor.photos <= 5 and visitor.first_seen <= visitor.last_seen
        assert [p.name for p in gallery.people()] == ["Known Person"]
        named = gallery.name_visitor("Visitor 1", "Now Known")  # one step from the People page
        assert named.kind == "person" and named.photos == visitor.photos
    shown, _ = play(gallery_location, [appearance_clip(stranger / "8.jpg", 16)])
    assert shown == [("Now Known", False)]  # recognised by the name given


def test_blurred_or_tiny_views_never_make_a_visitor(gallery_location, lfw):
    stranger = lfw[-2]
    tiny = [cv2.resize(cv2.resize(f, (160, 120)), (640, 480)) for f in appearance_clip(stranger / "1.jpg", 16)]  # a face ~50 px, upscaled
    one_good_frame = [*appearance_clip(stranger / "2.jpg", 8, blur_sigma=6), *appearance_clip(stranger / "2.jpg", 1, start=8),
                      *appearance_clip(stranger / "2.jpg", 8, start=9, blur_sigma=6)]
    shown, processor = play(gallery_location, [appearance_clip(stranger / "1.jpg", 16, blur_sigma=6), one_good_frame])
    assert [name for name, _ in shown] == [None, None] and processor.book.created == 0
    with open_gallery(gallery_location) as gallery:
        assert gallery.visitors() == []
    faces = recognition.find_faces(tiny[0])
    assert faces and all(visitors.view_quality(tiny[0], face) is None for face in faces)


def view(centre: np.ndarray, rng, spread: float = 0.02) -> NewPhoto:
    encoding = centre + rng.normal(scale=spread, size=128)
    return NewPhoto("v.jpg", Box(0, 9, 9, 0), b"jpeg", encoding / np.linalg.norm(encoding), "sface", 1.0)


def test_regrouping_merges_visitors_split_online_and_keeps_different_people_apart(gallery_location):
    rng = np.random.default_rng(0)
    a, b = (c / np.linalg.norm(c) for c in rng.normal(size=(2, 128)))
    with open_gallery(gallery_location) as gallery:
        for centre, seen_at in ((a, 100.0), (b, 200.0), (a, 300.0), (a, 400.0)):
            gallery.add_visitor([view(centre, rng), view(centre, rng)], seen_at)
        merges = visitors.regroup(gallery, "sface", 0.75)
        assert sorted(merges) == [("Visitor 1", "Visitor 3"), ("Visitor 1", "Visitor 4")]
        kept = {v.name: v for v in gallery.visitors()}
        assert sorted(kept) == ["Visitor 1", "Visitor 2"]
        assert (kept["Visitor 1"].visits, kept["Visitor 1"].first_seen, kept["Visitor 1"].last_seen) == (3, 100.0, 400.0)
        assert kept["Visitor 1"].photos == 5  # six views merged, the five best kept
        assert visitors.regroup(gallery, "sface", 0.75) == []


def run_cli(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_visitor_commands_list_name_merge_and_forget(gallery_location, capsys):
    rng = np.random.default_rng(1)
    with open_gallery(gallery_location) as gallery:
        for k in range(4):
            gallery.add_visitor([view(rng.normal(size=128), rng)], 1000.0 + k)
    code, lines, _ = run_cli(capsys, "visitors", "--gallery", gallery_location)
    assert code == 0 and [(v["label"], v["visits"], v["photos"]) for v in lines] == [(f"Visitor {k}", 1, 1) for k in (1, 2, 3, 4)]
    assert set(lines[0]) == {"id", "label", "visits", "first_seen", "last_seen", "photos"}
    code, lines, _ = run_cli(capsys, "merge-visitors", "1", "Visitor 2", "--gallery", gallery_location)
    assert code == 0 and lines[0]["label"] == "Visitor 1" and lines[0]["photos"] == 2 and lines[0]["visits"] == 2
    code, lines, _ = run_cli(capsys, "name-visitor", "1", "--name", "Grace Hopper", "--gallery", gallery_location)
    assert code == 0 and lines == [{"visitor": "Visitor 1", "person": "Grace Hopper", "photos": 2}]
    code, lines, _ = run_cli(capsys, "forget-visitor", "3", "--gallery", gallery_location)
    assert code == 0 and lines == [{"forgotten": "Visitor 3", "photos_deleted": 1}]
    code, _, err = run_cli(capsys, "forget-visitor", "Grace Hopper", "--gallery", gallery_location)
    assert code == 2 and "no visitor" in err  # a person is not forgotten by the visitor command
    code, lines, _ = run_cli(capsys, "forget-visitors", "--older-than", "0", "--gallery", gallery_location)
    assert code == 0 and lines == [{"visitors_forgotten": 1}]
    code, lines, _ = run_cli(capsys, "people", "--gallery", gallery_location)
    assert [p["name"] for p in lines[0]["people"]] == ["Grace Hopper"]


def test_annotate_video_groups_the_strangers_of_a_file(tmp_path, lfw, capsys):
    from core.stream.synthetic import write_video

    stranger, other = lfw[-1], lfw[-3]
    blank = [np.full((480, 640, 3), 110, np.uint8)] * 12
    frames = appearance_clip(stranger / "1.jpg", 16) + blank + appearance_clip(other / "1.jpg", 16) + blank + appearance_clip(stranger / "6.jpg", 16)
    clip = write_video(frames, tmp_path / "clip.mp4", fps=15)
    db = str(tmp_path / "gallery.sqlite3")  # none yet: --visitors creates it
    code, lines, err = run_cli(capsys, "annotate-video", str(clip), str(tmp_path / "out.mp4"), "--visitors", "--gallery", db,
                               "--processors", "")  # fmt: skip
    assert code == 0, err
    assert lines[0]["visitors"] == ["Visitor 1", "Visitor 2"] and lines[0]["visitors_created"] == 2
    code, lines, _ = run_cli(capsys, "visitors", "--gallery", db)
    assert [v["label"] for v in lines] == ["Visitor 1", "Visitor 2"]


def test_the_people_page_names_merges_and_forgets_visitors(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    location = str(tmp_path / "gallery.sqlite3")
    rng = np.random.default_rng(2)
    with open_gallery(location) as gallery:
        for k in range(3):
            encoding = rng.normal(size=128)
            gallery.add_visitor([NewPhoto("v.jpg", Box(0, 9, 9, 0), jpeg, encoding / np.linalg.norm(encoding), "sface", 1.0)], 1000.0 + k)
    monkeypatch.setenv("VISION_LAB_GALLERY", location)
    page = AppTest.from_file(str(REPO / "pages" / "people.py"), default_timeout=120)
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    assert [e.label.split(" · ")[0] for e in page.expander if e.label.startswith("Visitor")] == ["Visitor 1", "Visitor 2", "Visitor 3"]
    ids = {v.name: v.id for v in open_gallery(location).visitors()}
    page.text_input(key=f"visitor_name_{ids['Visitor 1']}").input("Grace Hopper")
    page.run()
    page.button(key=f"visitor_do_name_{ids['Visitor 1']}").click()
    page.run()
    page.selectbox(key=f"visitor_merge_into_{ids['Visitor 3']}").select("Visitor 2")
    page.button(key=f"visitor_merge_{ids['Visitor 3']}").click()
    page.run()
    assert not page.exception, [e.value for e in page.exception]
    with open_gallery(location) as gallery:
        assert [p.name for p in gallery.people()] == ["Grace Hopper"]
        assert [(v.name, v.photos, v.visits) for v in gallery.visitors()] == [("Visitor 2", 2, 2)]
    page.button(key=f"visitor_forget_{ids['Visitor 2']}").click()
    page.run()
    assert open_gallery(location).visitors() == []
