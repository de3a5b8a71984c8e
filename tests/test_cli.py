import json
import subprocess
import sys

from tests.conftest import REPO, shared_data


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_analyze_prints_one_json_line_per_image_in_order_and_goes_on_after_a_bad_one(tmp_path):
    photos = shared_data("faces_identities_knn_examples/test")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photos / 'obama1.jpg'}\n")
    done = run_cli("analyze", str(photos / "obama_and_biden.jpg"), str(bad), f"@{listing}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(photos / "obama_and_biden.jpg"), str(bad), str(photos / "obama1.jpg")]
    assert len(lines[0]["faces"]) == 3 and len(lines[2]["faces"]) == 1  # Biden, Obama, a woman at the edge
    assert "error" in lines[1] and "faces" not in lines[1]
    face = lines[0]["faces"][0]
    top, right, bottom, left = face["box"]
    assert 0 <= left < right <= lines[0]["width"] and 0 <= top < bottom <= lines[0]["height"]
    assert set(face) >= {"box", "keypoints", "name", "distance", "age", "gender", "gender_confidence", "angle"}
    assert done.returncode == 1  # one image failed


def test_analyze_accepts_a_folder():
    photos = shared_data("faces_identities/Ariel_Sharon")
    done = run_cli("analyze", str(photos), "--detector", "hog")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert len(lines) == 10 and sum(len(line["faces"]) >= 1 for line in lines) >= 9


def test_bad_usage_is_one_line_and_non_zero():
    done = run_cli("analyze", "x.jpg", "--detector", "yolo")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "unknown detector" in done.stderr


def test_models_lists_every_model_with_its_source():
    done = run_cli("models")
    assert done.returncode == 0, done.stderr
    models = {m["name"]: m for m in json.loads(done.stdout)["models"]}
    assert models["Haar cascade face detector"]["available"] is True
    assert all(m["source"] for m in models.values())


def test_effects_lists_every_effect_and_analyze_draws_them_into_the_annotated_image(tmp_path):
    import cv2
    import numpy as np

    listed = run_cli("effects")
    assert listed.returncode == 0, listed.stderr
    effects = {e["name"]: e["kind"] for e in json.loads(listed.stdout)["effects"]}
    assert len([n for n, kind in effects.items() if kind == "fun"]) >= 8 and effects["blur"] == "privacy"
    photo = shared_data("faces_identities_knn_examples/test/obama1.jpg")
    out = tmp_path / "crowned.png"
    done = run_cli("analyze", str(photo), "--effects", "crown,sunglasses", "--annotated", str(out))
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["annotated"] == str(out) and record["faces"][0]["effects"] == ["crown", "sunglasses"]
    drawn = cv2.imread(str(out))
    gold = np.all(np.abs(drawn.astype(int) - (30, 190, 250)) < 20, axis=2)
    assert drawn.shape[:2] == (record["height"], record["width"]) and gold.sum() > 50
    bad = run_cli("analyze", str(photo), "--effects", "halo")
    assert bad.returncode == 2 and "unknown effect" in bad.stderr
    lonely = run_cli("analyze", str(photo), "--who", "unknown")
    assert lonely.returncode == 2 and "--effects" in lonely.stderr


def test_annotate_video_blurs_only_the_faces_nobody_enrolled(tmp_path, two_face_frame, face_photos):
    """`annotate-video IN OUT --effects blur --who unknown`: privacy for bystanders, enrolled people stay visible."""
    import cv2
    import numpy as np

    from core.stream.synthetic import write_video
    from core.stream.video import upright

    gallery = tmp_path / "gallery.sqlite3"
    assert run_cli("enroll", str(face_photos[0]), "--name", "Known", "--gallery", str(gallery)).returncode == 0
    clip = write_video([two_face_frame] * 20, tmp_path / "two.mp4", fps=10)  # face_photos[0] left, [1] right
    out = tmp_path / "private.mp4"
    done = run_cli("annotate-video", str(clip), str(out), "--processors", "", "--effects", "blur", "--who", "unknown",
                   "--gallery", str(gallery))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["names_seen"] == ["Known"]  # --who unknown ran recognition by itself
    import av

    with av.open(str(out)) as container:
        frame = [upright(f) for f in container.decode(video=0)][-1]

    def detail(image: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    known, stranger = (np.s_[200:260, 120:180], np.s_[200:260, 440:500])  # the middles of the two faces, inside their boxes
    assert detail(frame[known]) > 0.5 * detail(two_face_frame[known])  # as sharp as it was (but for the codec)
    assert detail(frame[stranger]) < 0.1 * detail(two_face_frame[stranger])  # blurred


def test_stylize_fast_paints_an_image_and_a_video_and_styles_lists_and_shows_them(tmp_path, face_photos):
    from core.stream.synthetic import face_clip, write_video
    from core.style import fast

    if fast.unavailable():
        import pytest

        pytest.skip(fast.unavailable())
    photo = shared_data("faces_identities_knn_examples/test/obama_and_biden.jpg")
    done = run_cli("stylize-fast", str(photo), str(tmp_path / "painted.png"), "--style", "3", "--blend", "19:0.3", "--region", "background")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["style"] == "3:0.7,19:0.3" and record["faces"] == 3 and record["fps_reached"] > 0
    assert (tmp_path / "painted.png").stat().st_size > 10_000
    clip = write_video(list(face_clip(face_photos[:2], 12, size=(160, 120), face_side=80)), tmp_path / "clip.mp4", fps=6)
    done = run_cli("stylize-fast", str(clip), str(tmp_path / "painted.mp4"), "--size", "160")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 12 and (tmp_path / "painted.mp4").is_file()
    done = run_cli("styles", "--sheet", str(tmp_path / "sheet.png"), "--photo", str(photo))
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert len(listed["styles"]) == 26 and (tmp_path / "sheet.png").is_file()
    bad = run_cli("stylize-fast", str(photo), str(tmp_path / "x.png"), "--style", "31")
    assert bad.returncode == 2 and "does not exist" in bad.stderr
