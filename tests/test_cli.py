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
