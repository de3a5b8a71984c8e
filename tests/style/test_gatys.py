"""Style transfer: losses against hand-computed values, the optimisation, cancel, colours, the job."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace

import cv2
import numpy as np
import pytest
import tensorflow as tf

from core.style import gatys as st
from core.style.gatys import StyleSettings
from tests.conftest import REPO, shared_data


def test_gram_matrix_is_channel_correlations_averaged_over_positions():
    # 2 positions, 2 channels: a = (1, 2), b = (3, 4) -> [[1+9, 2+12], [2+12, 4+16]] / 2
    features = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_allclose(st.gram_matrix(features).numpy(), [[5.0, 7.0], [7.0, 10.0]])


def test_content_style_and_tv_losses_match_hand_computed_values():
    content = st.content_loss(tf.constant([[1.0, 2.0, 3.0]]), tf.constant([[1.0, 0.0, 0.0]]))
    assert content.numpy() == pytest.approx((0 + 4 + 9) / 3)

    features = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])  # Gram [[5, 7], [7, 10]]
    style = st.style_loss((features, features), (tf.zeros((2, 2)), tf.constant([[5.0, 7.0], [7.0, 10.0]])))
    assert style.numpy() == pytest.approx(((25 + 49 + 49 + 100) / 4 + 0) / 2)

    image = np.zeros((1, 2, 3, 3), np.float32)
    image[0, 1, 2, :] = 6.0  # one bright corner pixel
    # vertical: 6 pairs x 3 channels, one pair differs by 6 per channel; horizontal: 4 pairs x 3, one differs
    tv = st.total_variation_loss(tf.constant(image))
    assert tv.numpy() == pytest.approx(3 * 36 / 9 + 3 * 36 / 12)


def test_vgg19_structure_is_truncated_at_the_deepest_layer_used():
    backbone = st.vgg19_backbone(weights=None)
    names = [layer.name for layer in backbone.layers]
    assert names[0] == "block1_conv1" and names[-1] == "block5_conv1"
    assert set(st.STYLE_LAYERS) | {st.CONTENT_LAYER} <= set(names)
    assert len(names) == 13  # VGG19: 2 + 2 + 4 + 4 convolutions, then block5_conv1
    content, style = st.FeatureExtractor(backbone)(tf.zeros((1, 64, 48, 3)))
    assert content.shape == (1, 8, 6, 512)
    assert [f.shape[1:3] for f in style] == [(64, 48), (32, 24), (16, 12), (8, 6), (4, 3)]


def test_flops_count_each_convolution_at_its_blocks_resolution_forward_and_backward():
    def layer(name: str, c_in: int, c_out: int) -> st.ConvLayer:
        return st.ConvLayer(name, np.zeros((3, 3, c_in, c_out), np.float32), np.zeros(c_out, np.float32))

    backbone = st.Backbone("tiny", (layer("block1_conv1", 3, 2), layer("block2_conv1", 2, 2)), (0, 0, 0), "none")
    forward = 2 * 4 * 4 * 9 * 3 * 2 + 2 * 2 * 2 * 9 * 2 * 2  # 4x4 then, after a pool, 2x2
    assert st.flops_per_evaluation(backbone, 4, 4) == 2 * forward


def test_missing_vgg19_weights_give_a_message_naming_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    reason = st.backbone_unavailable("vgg19")
    assert st.VGG19_WEIGHTS_FILE in reason and str(tmp_path / "models") in reason
    assert st.default_backbone() == "vgg16-hed"
    with pytest.raises(st.WeightsUnavailable, match=st.VGG19_WEIGHTS_FILE):
        st._cached_backbone.__wrapped__("vgg19")


def test_bad_settings_are_refused_with_a_reason():
    for bad, words in [({"size": 4}, "size"), ({"iterations": 0}, "iterations"), ({"init": "zeros"}, "init"),
                       ({"optimizer": "sgd"}, "optimizer"), ({"tv_weight": -1}, "tv weight.*at least 0"),
                       ({"style_weight": float("nan")}, "style weight must be a finite"),
                       ({"learning_rate": float("inf")}, "learning rate must be a finite"),
                       ({"backbone": "resnet"}, "backbone")]:
        with pytest.raises(st.StyleTransferError, match=words):
            StyleSettings(**bad).checked()


def test_an_image_too_thin_for_the_network_at_the_chosen_size_is_refused():
    thin = np.zeros((40, 600, 3), np.uint8)  # at 128 px: 128x9, under conv5_1's 16 px
    with pytest.raises(st.StyleTransferError, match="content image would be 128x9"):
        st.stylize(thin, thin, StyleSettings(size=128, iterations=1))


def test_keep_colors_keeps_the_contents_chroma_and_the_stylized_luminance():
    rng = np.random.default_rng(0)
    content = rng.integers(40, 215, (32, 32, 3), dtype=np.uint8)
    stylized = rng.integers(40, 215, (32, 32, 3), dtype=np.uint8)
    kept = cv2.cvtColor(st.keep_colors(stylized, content), cv2.COLOR_BGR2YCrCb).astype(int)
    content_ycc = cv2.cvtColor(content, cv2.COLOR_BGR2YCrCb).astype(int)
    stylized_ycc = cv2.cvtColor(stylized, cv2.COLOR_BGR2YCrCb).astype(int)
    # equal up to rounding, except where the combination leaves the RGB gamut and gets clipped
    assert np.abs(kept[:, :, 1:] - content_ycc[:, :, 1:]).mean() < 0.5
    assert np.abs(kept[:, :, 0] - stylized_ycc[:, :, 0]).mean() < 0.5
    assert np.abs(content_ycc - stylized_ycc).mean() > 20  # the test can tell the two images apart


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    from core.images import load_image

    folder = shared_data("style_transfer")
    return load_image(folder / "content" / "tubingen.jpg"), load_image(folder / "style" / "starry_night.jpg")


def test_lbfgs_decreases_the_loss_over_10_iterations_at_64px(images):
    steps: list[st.Step] = []
    result = st.stylize(*images, StyleSettings(size=64, iterations=10, backbone="vgg16-hed"), on_step=steps.append)
    totals = [losses.total for losses in result.history]
    assert len(result.history) == 11 and [s.losses.iteration for s in steps] == list(range(1, 11))
    assert totals[-1] < 0.5 * totals[0]
    assert result.image_bgr.shape == (48, 64, 3) and result.image_bgr.dtype == np.uint8
    assert not np.array_equal(result.image_bgr, st.fit_size(images[0], 64))


def test_adam_from_noise_decreases_the_loss(images):
    settings = StyleSettings(size=48, iterations=8, backbone="vgg16-hed", optimizer="adam", init="noise")
    result = st.stylize(*images, settings)
    assert result.history[-1].total < result.history[0].total
    assert result.evaluations == 9  # one per iteration plus the starting point


def test_cancel_stops_within_one_iteration(images):
    cancel = threading.Event()
    seen: list[int] = []

    def on_step(step: st.Step) -> None:
        seen.append(step.losses.iteration)
        if step.losses.iteration == 2:
            cancel.set()

    result = st.stylize(*images, StyleSettings(size=48, iterations=50, backbone="vgg16-hed"), on_step, cancel)
    assert result.cancelled and seen == [1, 2] and result.iterations == 2


def test_preserve_colors_result_has_the_contents_chroma(images):
    settings = StyleSettings(size=48, iterations=3, backbone="vgg16-hed", preserve_colors=True)
    result = st.stylize(*images, settings)
    content = cv2.cvtColor(st.fit_size(images[0], 48), cv2.COLOR_BGR2YCrCb).astype(int)
    output = cv2.cvtColor(result.image_bgr, cv2.COLOR_BGR2YCrCb).astype(int)
    plain = cv2.cvtColor(st.stylize(*images, replace(settings, preserve_colors=False)).image_bgr, cv2.COLOR_BGR2YCrCb)
    assert np.abs(output[:, :, 1:] - content[:, :, 1:]).mean() < 0.5
    assert np.abs(plain[:, :, 1:].astype(int) - content[:, :, 1:]).mean() > 1.0  # style changed the colours


def test_cli_stylize_prints_the_json_contract_and_writes_the_image(tmp_path):
    folder = shared_data("style_transfer")
    out = tmp_path / "out.png"
    done = subprocess.run(
        [sys.executable, "-m", "core", "stylize", str(folder / "content" / "chicago.jpg"),
         str(folder / "style" / "wave.jpg"), str(out), "--size", "48", "--iterations", "2", "--backbone", "vgg16-hed"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert record["backbone"] == "vgg16-hed" and set(record["final"]) == {"total", "content", "style", "tv"}
    assert [h["iteration"] for h in record["loss_history"]] == [0, 1, 2]
    assert record["seconds_per_iteration"] > 0 and cv2.imread(str(out)).shape == (32, 48, 3)


def test_cli_stylize_refuses_an_unreadable_image(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    done = subprocess.run([sys.executable, "-m", "core", "stylize", str(bad), str(bad), str(tmp_path / "o.png")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "" and "not a readable image" in done.stderr
    assert not (tmp_path / "o.png").exists()
