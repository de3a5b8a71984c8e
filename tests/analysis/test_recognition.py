import io
import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from core.analysis import recognition
from core.analysis.recognition import Matcher, RecognitionProcessor, enroll, recognize
from core.cli import main
from core.faces import Box, Face, FrameResult
from core.store.gallery import Encodings, GalleryError, NewPhoto, open_gallery
from tests.conftest import paste, shared_data


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch):
    """Enrollment without jitter: ten times faster, same code path."""
    monkeypatch.setattr(recognition, "ENROLL_JITTERS", 0)


@pytest.fixture
def gallery(gallery_location):
    with open_gallery(gallery_location) as g:
        yield g


@pytest.fixture(scope="module")
def people():
    """{name: [photo paths 1..10]} for each LFW person."""
    root = shared_data("faces_identities")
    return {p.name.replace("_", " "): sorted(p.glob("*.jpg"), key=lambda f: int(f.stem)) for p in sorted(root.iterdir()) if p.is_dir()}


NAMES = ["Alejandro Toledo", "Alvaro Uribe", "Ariel Sharon", "Bill Clinton"]  # one face on each photo used


def png_bytes(image_bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", image_bgr)[1].tobytes()


def bomb_png(side: int = 10_000) -> bytes:
    """A tiny PNG whose header announces side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def three_faces(people) -> np.ndarray:
    frame = np.full((300, 660, 3), 120, np.uint8)
    for k, name in enumerate(NAMES[:3]):
        paste(frame, people[name][0], 20 + k * 215, 40, 200)
    return frame


def test_bad_uploads_are_each_rejected_with_a_reason_and_nothing_is_written(gallery, people):
    photo = people["Ariel Sharon"][0].read_bytes()
    uploads = [
        ("notes.txt", b"this is not an image at all"),
        ("truncated.jpg", photo[: len(photo) // 2]),
        ("bomb.png", bomb_png()),
        ("wall.png", png_bytes(np.full((300, 300, 3), 128, np.uint8))),
        ("three.png", png_bytes(three_faces(people))),
        ("tiny.png", png_bytes(cv2.resize(cv2.imread(str(people["Ariel Sharon"][0])), (60, 60)))),
    ]
    version = gallery.version()
    result = enroll(gallery, "Ariel Sharon", uploads)
    reasons = {p.source: p.reason for p in result.photos}
    assert not any(p.accepted for p in result.photos) and not result.written
    assert "not a readable image" in reasons["notes.txt"]
    assert "damaged or truncated" in reasons["truncated.jpg"]
    assert "too large" in reasons["bomb.png"]
    assert "no face" in reasons["wall.png"]
    assert "3 faces" in reasons["three.png"] and result.photos[4].needs_choice and len(result.photos[4].boxes) == 3
    assert reasons["tiny.png"] is not None  # too small to find or to use
    assert gallery.people() == [] and gallery.version() == version


@pytest.mark.parametrize("name", ["", "x" * 500, "../../etc/passwd", "<script>alert(1)</script>", "**bold** [x](y)"])
def test_bad_names_are_refused_before_any_photo_is_read(gallery, name, monkeypatch):
    monkeypatch.setattr(recognition, "prepare_photo", lambda *a, **k: pytest.fail("a photo was read"))
    with pytest.raises(GalleryError):
        enroll(gallery, name, [("a.jpg", b"...")])
    assert gallery.people() == []


def test_a_chosen_face_of_a_group_photo_is_enrolled_and_recognised(gallery, people):
    names = NAMES[:3]
    group = png_bytes(three_faces(people))
    result = enroll(gallery, names[1], [("group.png", group)], face_indices={0: 1})
    assert result.written and result.photos[0].chosen == 1
    assert result.photos[0].thumbnail_jpeg.startswith(b"\xff\xd8")
    faces = recognize(gallery, three_faces(people))
    assert [f.name for f in faces] == [None, names[1], None]
    assert all(f.distance is not None for f in faces)


def test_a_plain_subject_is_enrolled_without_asking_but_two_alike_faces_ask(gallery, people):
    subject_and_bystander = np.full((400, 600, 3), 120, np.uint8)
    paste(subject_and_bystander, people[NAMES[0]][0], 40, 40, 320)  # the subject, close to the camera
    paste(subject_and_bystander, people[NAMES[1]][0], 420, 220, 150)  # somebody behind
    outcome = enroll(gallery, NAMES[0], [("portrait.png", png_bytes(subject_and_bystander))]).photos[0]
    assert outcome.accepted and len(outcome.boxes) >= 2 and outcome.boxes[outcome.chosen].left < 300
    alike = enroll(gallery, NAMES[1], [("group.png", png_bytes(three_faces(people)))]).photos[0]
    assert not alike.accepted and alike.needs_choice


def test_enrolled_people_are_named_on_other_photos_and_strangers_are_unknown(gallery, people):
    names = NAMES
    for name in names[:3]:
        assert enroll(gallery, name, [(p.name, p) for p in people[name][:3]]).accepted == 3
    for name in names[:3]:  # news photos: a person may stand behind the subject, never named
        faces = recognize(gallery, cv2.imread(str(people[name][5])))
        subject = max(faces, key=lambda f: f.box.area)
        assert subject.name == name and [f.name for f in faces if f is not subject] == [None] * (len(faces) - 1)
    stranger = recognize(gallery, cv2.imread(str(people[names[3]][0])))
    assert {f.name for f in stranger} == {None} and min(f.distance for f in stranger) > 0.3
    assert [(p.name, p.photos) for p in gallery.people()] == [(n, 3) for n in sorted(names[:3])]


def encodings(rows: dict[str, list[list[float]]]) -> Encodings:
    names = tuple(name for name, vectors in rows.items() for _ in vectors)
    matrix = np.array([np.pad(v, (0, 128 - len(v))) for vectors in rows.values() for v in vectors], dtype=float)
    return Encodings(names, matrix, 1)


def at(*values: float) -> np.ndarray:
    return np.pad(np.array(values, float), (0, 128 - len(values)))


THRESHOLD_ROWS = {"A": [[0, 0], [0.4, 0]], "B": [[2, 0], [2.4, 0]], "C": [[0, 5]]}


def test_matcher_names_within_the_persons_threshold_and_clear_margin():
    check_thresholds_and_margin(encodings(THRESHOLD_ROWS))


def test_the_stores_own_search_gives_the_same_thresholds_and_margins(gallery):
    """The same, through the store's index: a scan for SQLite, SQL and HNSW for PostgreSQL."""
    for name, vectors in THRESHOLD_ROWS.items():
        gallery.add_photos(name, [NewPhoto(f"{name}.jpg", Box(0, 1, 1, 0), b"j", at(*v), "sface") for v in vectors])
    check_thresholds_and_margin(gallery.index("sface"))


def check_thresholds_and_margin(index) -> None:
    matcher = Matcher(index, tolerance=0.6, margin=0.9, spread_factor=1.4)
    assert [matcher.threshold(n) for n in "ABC"] == pytest.approx([0.56, 0.56, 0.6])  # 1.4 x spread 0.4; C: one photo
    assert matcher.match(at(0.2, 0.1)) == recognition.Match("A", pytest.approx(np.hypot(0.2, 0.1)))
    assert matcher.match(at(0, 0.58)).name is None  # within the tolerance, beyond A's own threshold
    assert matcher.match(at(1.2, 0)).name is None  # far from everybody
    near_both = Matcher(encodings({"A": [[0, 0]], "B": [[0.5, 0]]}), tolerance=0.6, margin=0.9)
    assert near_both.match(at(0.24, 0)).name is None  # 0.24 vs 0.26: no clear margin
    assert near_both.match(at(0.1, 0)).name == "A"
    assert Matcher(encodings({}), 0.6).match(at(0)) == recognition.Match(None, None)


class FakeEncoder:
    """Stands in for dlib: each track's face encodes to a fixed vector; counts the calls."""

    def __init__(self, vectors: dict[int, np.ndarray]) -> None:
        self.vectors = vectors
        self.calls: list[int | None] = []

    def __call__(self, frame, face: Face, encoder: str | None = None, enrolling: bool = False) -> np.ndarray:
        self.calls.append(face.track_id)
        face.encoding = self.vectors[face.track_id if face.track_id is not None else 0]
        return face.encoding


def frame_with(track_ids) -> FrameResult:
    return FrameResult(faces=[Face(Box(0, 10 * i + 10, 10, 10 * i), track_id=t) for i, t in enumerate(track_ids)])


@pytest.fixture
def live_setup(gallery_location, monkeypatch):
    path = gallery_location
    with open_gallery(path) as g:
        encoder = recognition.active_encoder()
        g.add_photos("Ann", [NewPhoto("a.jpg", Box(0, 1, 1, 0), b"j", at(0, 0), encoder)])
        g.add_photos("Ben", [NewPhoto("b.jpg", Box(0, 1, 1, 0), b"j", at(3, 0), encoder)])
    encoder = FakeEncoder({0: at(0, 0), 101: at(0.1, 0), 102: at(3.1, 0), 103: at(9, 9)})
    monkeypatch.setattr(recognition, "encode_face", encoder)
    monkeypatch.setattr(recognition, "GALLERY_CHECK_INTERVAL_S", 0.0)
    clock = [1000.0]
    monkeypatch.setattr(recognition.time, "monotonic", lambda: clock[0])
    return RecognitionProcessor(gallery=str(path)), encoder, clock, path


def test_live_processor_encodes_new_tracks_first_one_per_frame_and_keeps_names(live_setup):
    processor, encoder, clock, _ = live_setup
    shown = []
    for _ in range(5):
        result = frame_with([101, 102, 103])
        processor.process(None, result)
        shown.append([(f.name, f.distance is not None) for f in result.faces])
        clock[0] += 0.04
    assert encoder.calls == [101, 102, 103]  # from the 2nd frame, one encoding per frame, each new track once
    assert shown[0] == [(None, False)] * 3  # not confirmed yet
    assert shown[1] == [("Ann", True), (None, False), (None, False)]
    assert shown[4] == [("Ann", True), ("Ben", True), (None, True)]  # 103 is a stranger
    clock[0] += recognition.REENCODE_INTERVAL_S
    processor.process(None, frame_with([101, 102, 103]))
    assert encoder.calls[3:] == [101]  # the stalest track is refreshed, one per frame


def test_a_detection_seen_in_one_frame_only_is_never_encoded(live_setup):
    processor, encoder, _, _ = live_setup
    for track_ids in ([101], [101, 102], [101], [101]):  # 102: a one-frame false detection
        processor.process(None, frame_with(track_ids))
    assert encoder.calls == [101]


def test_live_processor_follows_gallery_changes_without_re_encoding(live_setup):
    processor, encoder, clock, path = live_setup
    for _ in range(3):
        processor.process(None, frame_with([101, 102]))
    with open_gallery(path) as g:
        g.rename("Ann", "Anna")
        g.forget("Ben")
    result = frame_with([101, 102])
    processor.process(None, result)
    assert encoder.calls == [101, 102]
    assert [f.name for f in result.faces] == ["Anna", None]


def test_still_faces_are_always_encoded(live_setup):
    processor, encoder, _, _ = live_setup
    for _ in range(2):
        result = frame_with([None, None])
        processor.process(None, result)
    assert encoder.calls == [None] * 4 and [f.name for f in result.faces] == ["Ann", "Ann"]


def test_the_processor_never_creates_a_gallery(tmp_path, monkeypatch):
    monkeypatch.setattr(recognition, "encode_face", FakeEncoder({0: at(0)}))
    processor = RecognitionProcessor(gallery=str(tmp_path / "absent.sqlite3"))
    result = frame_with([None])
    processor.process(None, result)
    assert result.faces[0].name is None and result.faces[0].distance is None
    assert not (tmp_path / "absent.sqlite3").exists()


def test_the_tolerance_saved_with_the_gallery_is_used_and_validated(gallery):
    assert recognition.gallery_tolerance(gallery, "sface") == recognition.ENCODERS["sface"].tolerance
    recognition.set_gallery_tolerance(gallery, 0.45, "sface")
    assert recognition.gallery_tolerance(gallery, "sface") == 0.45
    # Each encoder keeps its own: their distances are on different scales.
    assert recognition.gallery_tolerance(gallery, "dlib") == recognition.ENCODERS["dlib"].tolerance
    with pytest.raises(GalleryError):
        recognition.set_gallery_tolerance(gallery, 5.0)


def run_cli(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_cli_enroll_people_recognize_forget(tmp_path, gallery_location, people, capsys):
    db = gallery_location
    names = NAMES
    folder = tmp_path / "photos"
    for name in names[:2]:
        (folder / name.replace(" ", "_")).mkdir(parents=True)
        for photo in people[name][:2]:
            (folder / name.replace(" ", "_") / photo.name).write_bytes(photo.read_bytes())
    (folder / "bad<name>").mkdir()
    code, lines, _ = run_cli(capsys, "enroll-dir", str(folder), "--gallery", db)
    assert code == 1  # the badly named folder
    assert [line["person"] for line in lines if "error" in line] == ["bad<name>"]
    assert sum(line.get("accepted", False) for line in lines) == 4
    more = tmp_path / "more"
    more.mkdir()
    (more / "2.jpg").write_bytes(people[names[2]][1].read_bytes())
    code, lines, _ = run_cli(capsys, "enroll", "--gallery", db, "--name", names[2], str(people[names[2]][0]), str(more))
    assert code == 0 and [line["accepted"] for line in lines] == [True, True] and lines[0]["person"] == names[2]
    code, lines, _ = run_cli(capsys, "people", "--gallery", db)
    assert [(p["name"], p["photos"]) for p in lines[0]["people"]] == [(n, 2) for n in sorted(names[:3])]
    code, lines, _ = run_cli(capsys, "recognize", "--gallery", db, str(people[names[0]][6]), str(people[names[3]][0]))
    assert [[f["name"] for f in line["faces"]] for line in lines] == [[names[0]], [None]]
    code, lines, _ = run_cli(capsys, "forget", "--gallery", db, "--name", names[0].upper())
    assert code == 0 and lines == [{"forgotten": names[0].upper(), "photos_deleted": 2}]
    code, lines, err = run_cli(capsys, "forget", "--gallery", db, "--name", names[0])
    assert code == 2 and lines == [] and "nobody called" in err
    code, lines, err = run_cli(capsys, "enroll", "--gallery", db, "--name", "../evil", str(people[names[0]][0]))
    assert code == 2 and lines == [] and err.count("\n") == 1
    code, lines, err = run_cli(capsys, "people", "--gallery", str(tmp_path / "absent.sqlite3"))
    assert code == 2 and "no gallery" in err and not (tmp_path / "absent.sqlite3").exists()


def test_exif_orientation_is_honoured_when_enrolling(gallery, people):
    """A photo stored sideways with an EXIF 'rotate 90' tag is enrolled upright."""
    upright = Image.open(people["Ariel Sharon"][0]).convert("RGB")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned a quarter to the left
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera says: rotate 90 degrees clockwise to view
    tagged = io.BytesIO()
    sideways.save(tagged, format="JPEG", exif=exif)
    photos = [("upright.jpg", people["Ariel Sharon"][0]), ("sideways.jpg", tagged.getvalue())]
    assert enroll(gallery, "Ariel Sharon", photos).accepted == 2
    upright_encoding, tagged_encoding = gallery.encodings().matrix
    assert np.linalg.norm(upright_encoding - tagged_encoding) < 0.3  # a sideways face encodes ~0.6 away


def test_the_main_face_is_the_largest_then_the_most_central():
    off_centre, centre, small = Box(20, 60, 72, 8), Box(55, 101, 107, 49), Box(0, 10, 10, 0)
    assert recognition.main_face([off_centre, centre], (150, 150, 3)) == 1
    assert recognition.main_face([small, off_centre], (150, 150, 3)) == 1


def test_encodings_reuse_the_face_landmarks_and_match_dlibs_own_shape(people):
    from core.analysis.landmarks import shape_5

    image = cv2.imread(str(people["Ariel Sharon"][0]))
    face = Face(recognition._fallback_detector()(image)[0])  # a dlib detector's face: no landmarks yet
    assert face.landmarks is None
    encoding = recognition.encode_face(image, face, "dlib")
    assert face.landmarks is not None  # stored for the other processors
    expected = recognition._dlib_encoder().compute_face_descriptor(np.ascontiguousarray(image[:, :, ::-1]), shape_5(image, face))
    np.testing.assert_allclose(encoding, np.array(expected), atol=1e-6)


def test_the_encoder_is_sface_when_installed_and_can_be_chosen(monkeypatch):
    monkeypatch.delenv(recognition.ENCODER_ENV, raising=False)
    assert recognition.active_encoder() == ("sface" if recognition.sface.unavailable() is None else "dlib")
    monkeypatch.setenv(recognition.ENCODER_ENV, "dlib")
    assert recognition.active_encoder() == "dlib"
    monkeypatch.setenv(recognition.ENCODER_ENV, "facenet")
    with pytest.raises(ValueError, match="choose one of sface, dlib"):
        recognition.active_encoder()


def needs_sface() -> None:
    reason = recognition.sface.unavailable()
    if reason:
        pytest.skip(reason)


def sface_encoding(path) -> tuple[np.ndarray, np.ndarray, Face]:
    image = cv2.imread(str(path))
    face = recognition.find_faces(image)[0]
    return recognition.encode_face(image, face, "sface"), image, face


def test_sface_encodings_keep_people_apart_on_the_tolerance_scale(people):
    needs_sface()
    tolerance = recognition.ENCODERS["sface"].tolerance
    sharon_1, sharon_5 = (sface_encoding(people["Ariel Sharon"][k])[0] for k in (0, 4))
    clinton, toledo = (sface_encoding(people[name][0])[0] for name in ("Bill Clinton", "Alejandro Toledo"))
    assert np.linalg.norm(sharon_1) == pytest.approx(2**-0.5)  # unit vector / sqrt(2): distance = sqrt(1 - cos)
    assert np.linalg.norm(sharon_1 - sharon_5) < tolerance
    assert min(np.linalg.norm(sharon_1 - clinton), np.linalg.norm(sharon_1 - toledo), np.linalg.norm(clinton - toledo)) > tolerance


def test_sface_aligns_on_the_eyes_when_yunet_finds_no_landmarks(people, monkeypatch):
    needs_sface()
    aligned, image, face = sface_encoding(people["Ariel Sharon"][0])
    monkeypatch.setattr(recognition.sface.shared_encoder(), "_landmarks", lambda frame, box: None)
    fallback = recognition.encode_face(image, face, "sface")
    assert np.linalg.norm(fallback - aligned) < 0.5 * recognition.ENCODERS["sface"].tolerance


def test_photos_of_another_encoder_are_ignored_until_encoded_again(gallery, people, monkeypatch):
    needs_sface()
    monkeypatch.setenv(recognition.ENCODER_ENV, "dlib")
    for name in NAMES[:2]:
        assert enroll(gallery, name, [(p.name, p) for p in people[name][:2]]).accepted == 2
    query = cv2.imread(str(people[NAMES[0]][5]))
    assert [f.name for f in recognize(gallery, query)] == [NAMES[0]]
    monkeypatch.setenv(recognition.ENCODER_ENV, "sface")
    assert gallery.encoder_counts() == {"dlib": 4} and len(gallery.encodings("sface").names) == 0
    assert [f.name for f in recognize(gallery, query)] == [None]  # dlib encodings are never compared with SFace's
    outcome = recognition.reencode_gallery(gallery)
    assert len(outcome["reencoded"]) == 4 and outcome["failed"] == []
    assert gallery.encoder_counts() == {"sface": 4}
    assert [f.name for f in recognize(gallery, query)] == [NAMES[0]]


def test_pair_report_scores_every_pair_and_finds_a_mislabelled_photo(gallery):
    rows = {"A": [[0, 0], [0.3, 0], [3.45, 0]], "B": [[3, 0], [3.1, 0]]}  # A's third photo looks like B
    for name, vectors in rows.items():
        gallery.add_photos(name, [NewPhoto(f"{name}{k}.jpg", Box(0, 1, 1, 0), b"j", at(*v), "sface") for k, v in enumerate(vectors)])
    gallery.add_visitor([NewPhoto("v.jpg", Box(0, 1, 1, 0), b"j", at(0.1, 0), "sface")], 1.0)  # visitors are left out
    report = recognition.pair_report(gallery.encodings("sface"), 0.5, {p.name for p in gallery.people()})
    assert len(report.same) == 4 and len(report.different) == 6  # A: 3 pairs, B: 1; A x B: 6
    # Within 0.5: A0-A1 and B0-B1 (same), A2-B0 and A2-B1 (different): precision 2/4, recall 2/4.
    assert (report.precision, report.recall, report.f1) == pytest.approx((0.5, 0.5, 0.5))
    (suspect,) = report.suspects
    a2 = gallery.photos("A")[2].id
    assert suspect[:3] == (a2, "A", "B") and suspect[4] < suspect[3]


def test_a_photo_already_enrolled_for_anybody_is_refused_saying_for_whom_and_the_others_go_through(gallery, people):
    blair = people["Tony Blair"]
    assert enroll(gallery, "Tony Blair", [("1.jpg", blair[0])]).written
    upload = [("same file.jpg", blair[0]), ("saved as png.png", png_bytes(cv2.imread(str(blair[0])))), ("2.jpg", blair[1]), ("2 again.jpg", blair[1].read_bytes())]
    result = enroll(gallery, "Gordon Brown", upload)
    reasons = [photo.reason for photo in result.photos]
    assert reasons == ["This photo is already enrolled for Tony Blair."] * 2 + [None, "This photo is already in this upload (2.jpg)."]
    assert [photo.accepted for photo in result.photos] == [False, False, True, False] and result.written
    assert [photo.source for photo in gallery.photos("Gordon Brown")] == ["2.jpg"]  # another photo of him is no duplicate
    assert [photo.source for photo in gallery.photos("Tony Blair")] == ["1.jpg"]


def test_a_snapshot_is_enrolled_with_the_faces_found_when_it_was_previewed(gallery, two_face_frame, monkeypatch):
    snapshot = recognition.Snapshot.of(two_face_frame)
    assert len(snapshot.faces) == 2
    monkeypatch.setattr(recognition, "find_faces", lambda image: pytest.fail("the snapshot's faces were found again"))
    asked = enroll(gallery, "Ann", [("live snapshot", snapshot)]).photos[0]
    assert asked.needs_choice and asked.boxes == [face.box for face in snapshot.faces]
    chosen = enroll(gallery, "Ann", [("live snapshot", snapshot)], face_indices={0: 1})
    assert chosen.written and [photo.box for photo in gallery.photos("Ann")] == [snapshot.faces[1].box]
    # What the preview showed decides, not another detection: a preview of one face enrolls it without asking.
    one = recognition.Snapshot(two_face_frame, snapshot.faces[:1])
    assert enroll(gallery, "Ben", [("live snapshot", one)]).photos[0].boxes == [snapshot.faces[0].box]


def test_face_choices_are_numbered_in_badges_that_grow_with_the_photo_and_the_chosen_face_stands_out():
    def colored_pixels(side: int, chosen: int | None) -> tuple[int, int]:
        """(pixels of the choice colour, of the chosen colour) for two faces on a white photo."""
        third = side // 3
        boxes = [Box(third, third - 10, 2 * third, 10), Box(third, side - 10, 2 * third, 2 * third)]
        drawn = recognition.draw_choices(np.full((side, side, 3), 255, np.uint8), boxes, chosen)
        return tuple(int(np.all(drawn == color, axis=2).sum()) for color in (recognition.CHOICE_COLOR, recognition.CHOSEN_COLOR))

    assert colored_pixels(1200, None)[0] > 10 * colored_pixels(300, None)[0]  # badges and boxes scale with the photo
    assert colored_pixels(600, None)[1] == 0
    plain, chosen = colored_pixels(600, 1)
    assert chosen > plain  # the chosen face's thicker box in its own colour
