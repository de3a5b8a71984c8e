import numpy as np
import pytest

from core.analysis.objects import (
    BACKBONES,
    CLASS_INDEX_FILE,
    MODEL_ENV,
    ImageNetClassifier,
    ObjectsProcessor,
    class_names,
    network_input,
    resized_rgb,
    top_k,
    unavailable,
)
from core.analysis.processors import processor_specs
from core.faces import FrameResult
from core.images import load_image
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def names() -> list[str]:
    return class_names(shared_data("imagenet_classifier") / CLASS_INDEX_FILE)


@pytest.fixture(scope="module")
def tflite():
    """The quantized TFLite MobileNetV2 (1001 outputs, index 0 = background), via TensorFlow."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(str(shared_data("imagenet_classifier/mobilenet_v2_1.0_224_quant.tflite")))
    interpreter.allocate_tensors()
    return interpreter


def tflite_probabilities(interpreter, rgb: np.ndarray) -> np.ndarray:
    """The 1000 ImageNet probabilities (background dropped, output dequantized)."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], rgb[None])
    interpreter.invoke()
    scale, zero_point = out["quantization"]
    return (interpreter.get_tensor(out["index"])[0, 1:].astype(np.float64) - zero_point) * scale


def test_class_names_follow_the_index_order_of_the_labels_file(names):
    lines = shared_data("imagenet_classifier/imagenet_labels.txt").read_text().splitlines()
    assert len(names) == 1000 and lines[0] == "background"
    assert names[0] == "tench" and names[285] == "Egyptian cat" and names[934] == "hotdog"
    # the class index and the TFLite labels (shifted by background) describe the same classes
    agree = sum(lines[i + 1].split(",")[0].lower().replace("_", " ") == names[i].lower() for i in range(1000))
    assert agree > 900


@pytest.mark.parametrize(("photo", "expected"), [("cat_720p.jpg", "Egyptian cat"), ("hot_dog.jpg", "hotdog")])
def test_preprocessing_and_decoding_name_real_photos_with_a_real_classifier(tflite, names, photo, expected):
    rgb = resized_rgb(load_image(shared_data(f"imagenet_classifier/sample_images/{photo}")), 224)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    labels = top_k(tflite_probabilities(tflite, rgb), names)
    assert len(labels) == 5 and labels[0][0] == expected and labels[0][1] > 0.5
    assert [p for _, p in labels] == sorted((p for _, p in labels), reverse=True)
    # our float input for MobileNetV2 is the value the quantized model reads from the bytes
    scale, zero_point = tflite.get_input_details()[0]["quantization"]
    assert np.allclose(network_input(rgb, "tf")[0], (rgb.astype(np.float32) - zero_point) * scale, atol=0.01)


def test_caffe_preprocessing_is_bgr_minus_the_imagenet_means():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red
    x = network_input(rgb, "caffe")
    assert x.shape == (1, 2, 2, 3)
    assert np.allclose(x[0, 0, 0], [-103.939, -116.779, 200 - 123.68])
    with pytest.raises(ValueError, match="unknown preprocessing mode"):
        network_input(rgb, "torch")


def test_top_k_refuses_probabilities_that_do_not_match_the_names():
    with pytest.raises(ValueError, match="3 probabilities for 2 class names"):
        top_k(np.ones(3) / 3, ["a", "b"])


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_classifier_structure_with_random_weights(backbone, names):
    classifier = ImageNetClassifier(backbone, weights=None, names=names)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    probabilities = classifier.probabilities(frame)
    assert probabilities.shape == (1000,) and abs(probabilities.sum() - 1) < 1e-3
    labels = classifier.top_k(frame)
    assert len(labels) == 5 and all(label in names for label, _ in labels)


class CountingClassifier:
    def __init__(self) -> None:
        self.calls = 0

    def top_k(self, frame_bgr, k=5):
        self.calls += 1
        return [(f"mean {frame_bgr.mean():.0f}", 0.9)][:k]


def test_labels_are_reused_for_a_few_frames_of_the_same_scene_only():
    classifier = CountingClassifier()
    processor = ObjectsProcessor(classifier=classifier, every=5)
    grey, white = np.full((480, 640, 3), 110, np.uint8), np.full((480, 640, 3), 250, np.uint8)
    results = []
    for _ in range(6):
        results.append(FrameResult())
        processor.process(grey, results[-1])
    assert classifier.calls == 2  # frames 1 and 6; frames 2-5 reuse the labels
    assert all(r.labels == [("mean 110", 0.9)] for r in results)
    other = FrameResult()
    processor.process(white, other)  # another scene (another stream, another still) is classified
    assert classifier.calls == 3 and other.labels == [("mean 250", 0.9)]
    again = FrameResult()
    processor.process(grey, again)  # the first scene's labels are still remembered
    assert classifier.calls == 3 and again.labels == [("mean 110", 0.9)]


def test_unavailable_names_the_missing_files_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(MODEL_ENV, raising=False)
    reason = unavailable()
    assert BACKBONES["mobilenet_v2"].weights_file in reason and CLASS_INDEX_FILE in reason
    assert str(tmp_path / "models") in reason
    (tmp_path / "models").mkdir()
    for name in (BACKBONES["vgg16"].weights_file, CLASS_INDEX_FILE):
        (tmp_path / "models" / name).write_bytes(b"")
    assert BACKBONES["mobilenet_v2"].weights_file in unavailable()
    monkeypatch.setenv(MODEL_ENV, "vgg16")
    assert unavailable() is None
    monkeypatch.setenv(MODEL_ENV, "resnet")
    assert "not a known classifier" in unavailable()


def test_the_objects_processor_is_in_the_catalogue():
    assert "objects" in [spec.name for spec in processor_specs()]


def test_the_production_path_loads_weights_and_class_names_from_the_keras_cache(tmp_path, monkeypatch, names):
    """Offline stand-in for a real download: random weights written where Keras keeps the file."""
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    from core.analysis.objects import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(MODEL_ENV, raising=False)
    (tmp_path / "models").mkdir()
    saved = build_model("mobilenet_v2", weights=None)
    with h5py.File(tmp_path / "models" / BACKBONES["mobilenet_v2"].weights_file, "w") as f:
        save_weights_to_hdf5_group(f, saved)
    (tmp_path / "models" / CLASS_INDEX_FILE).write_bytes(shared_data(f"imagenet_classifier/{CLASS_INDEX_FILE}").read_bytes())
    assert unavailable() is None
    processor = ObjectsProcessor()
    assert processor.every == BACKBONES["mobilenet_v2"].every
    assert np.array_equal(processor.classifier.model.weights[0].numpy(), saved.weights[0].numpy())
    assert processor.classifier.names == names
    result = FrameResult()
    processor.process(load_image(shared_data("imagenet_classifier/sample_images/cat_720p.jpg")), result)
    assert len(result.labels) == 5 and all(label in names for label, _ in result.labels)
