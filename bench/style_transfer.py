"""Style transfer speed: seconds per L-BFGS iteration and per loss evaluation, ours against the
Keras-example way, at 256 and 512 px for each backbone; achieved GFLOP/s against the CPU's peak;
one full default run (256 px, 100 L-BFGS iterations, vgg16-hed). Prints ONE JSON object.

    .venv/bin/python bench/style_transfer.py [--iterations 4] [--reference-iterations 2] [--full-iterations 100]

Targets: ours >= 2x faster per iteration than the reference; the full run <= 90 s on the
2-core machine. VGG19 is timed with random weights when its ImageNet file is absent (same
arithmetic). The machine may be shared: ``cpu_seconds`` shows how much of each wall second we got.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import core  # noqa: E402, F401  (import-order guard before TensorFlow)
from bench.common import SHARED_DATA, shared_data_or_skip  # noqa: E402
from core.images import load_image  # noqa: E402
from core.style import gatys as st  # noqa: E402

DATA = SHARED_DATA / "style_transfer"
TARGET_SPEEDUP = 2.0
TARGET_FULL_RUN_S = 90.0


def peak_gflops() -> dict[str, float | int | str]:
    """Single-precision peak: cores x clock x 32 FLOP/cycle (two 256-bit FMA pipes, AVX2+FMA)."""
    info = Path("/proc/cpuinfo").read_text()
    mhz = float(next(line.split(":")[1] for line in info.splitlines() if line.startswith("cpu MHz")))
    cores = os.cpu_count() or 1
    flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
    per_cycle = 32 if {"avx2", "fma"} <= set(flags) else 8
    return {"cores": cores, "mhz": mhz, "flop_per_cycle": per_cycle, "peak_gflops": round(cores * mhz * per_cycle / 1e3, 1),
            "peak_gflop_per_core_second": round(mhz * per_cycle / 1e3, 1)}


class Timer:
    """Wall and CPU time of each iteration, from the optimiser's callback."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, int]] = []
        self.evaluations = 0

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), self.evaluations))

    def summary(self, flops_per_evaluation: float, peak: float) -> dict[str, float | int]:
        """Per iteration and per evaluation, skipping the first iteration (tracing, line-search start-up)."""
        (wall0, cpu0, ev0), (wall1, cpu1, ev1) = self.marks[1], self.marks[-1]
        iterations, evaluations = len(self.marks) - 2, ev1 - ev0
        wall, cpu = wall1 - wall0, cpu1 - cpu0
        gflops = flops_per_evaluation * evaluations / wall / 1e9
        return {
            "iterations_timed": iterations,
            "evaluations": evaluations,
            "seconds_per_iteration": round(wall / iterations, 3),
            "seconds_per_evaluation": round(wall / evaluations, 3),
            "cpu_seconds_per_iteration": round(cpu / iterations, 3),
            "gflops": round(gflops, 1),
            "fraction_of_peak": round(gflops / peak, 3),
            # per second of CPU actually granted: what the code achieves when the machine is shared
            "gflop_per_cpu_second": round(flops_per_evaluation * evaluations / cpu / 1e9, 1),
        }


def ours(extractor: st.FeatureExtractor, content: np.ndarray, style: np.ndarray, size: int, iterations: int) -> Timer:
    settings = st.StyleSettings(size=size, iterations=iterations + 2, backbone=extractor.backbone.name)
    timer = Timer()

    def on_step(step: st.Step) -> None:
        timer.evaluations = step.evaluations
        timer.mark()

    st.stylize(content, style, settings, on_step=on_step, extractor=extractor)
    return timer


def reference(backbone: st.Backbone, content: np.ndarray, style: np.ndarray, size: int, iterations: int) -> Timer:
    """The Keras example's loop: a Keras model with every VGG16 layer as an output, content, style and
    combination images through it as one batch of 3, an eager ``tf.GradientTape``, scipy's L-BFGS-B."""
    import keras
    import tensorflow as tf
    from scipy.optimize import minimize

    vgg = keras.applications.VGG16(weights=None, include_top=False)
    for layer in backbone.layers:
        vgg.get_layer(layer.name).set_weights([layer.kernel, layer.bias])
    model = keras.Model(vgg.inputs, {layer.name: layer.output for layer in vgg.layers})
    mean = np.array(backbone.mean_bgr, np.float32)
    base = st.fit_size(content, size).astype(np.float32) - mean
    painting = cv2.resize(style, base.shape[1::-1], interpolation=cv2.INTER_AREA).astype(np.float32) - mean
    shape = (1, *base.shape)
    timer = Timer()

    def gram(x: tf.Tensor) -> tf.Tensor:
        features = tf.reshape(tf.transpose(x, (2, 0, 1)), (tf.shape(x)[2], -1))
        return tf.matmul(features, tf.transpose(features))

    def loss_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        combination = tf.Variable(x.reshape(shape).astype(np.float32))
        with tf.GradientTape() as tape:
            features = model(tf.concat([base[None], painting[None], combination], 0))
            c = features["block5_conv2"]
            loss = 2.5e-8 * tf.reduce_sum(tf.square(c[2] - c[0]))
            for name in st.STYLE_LAYERS:
                f = features[name]
                channels, pixels = f.shape[-1], f.shape[1] * f.shape[2]
                loss += 1e-6 / len(st.STYLE_LAYERS) * tf.reduce_sum(tf.square(gram(f[1]) - gram(f[2]))) / (
                    4.0 * channels**2 * pixels**2)
        gradient = tape.gradient(loss, combination)
        timer.evaluations += 1
        return float(loss), gradient.numpy().ravel().astype(np.float64)

    timer.mark()
    minimize(loss_and_gradient, base.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
             callback=lambda intermediate_result: timer.mark(),
             options={"maxiter": iterations + 1, "ftol": 0.0, "gtol": 0.0})
    return timer


def measure(name: str, run: Callable[[], Timer], flops: float, peak: float) -> dict:
    print(f"bench: {name}", file=sys.stderr, flush=True)
    return run().summary(flops, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=4, help="timed L-BFGS iterations per case (ours)")
    parser.add_argument("--reference-iterations", type=int, default=2, help="timed iterations of the reference")
    parser.add_argument("--full-iterations", type=int, default=100, help="the full run's iterations (0: skip)")
    parser.add_argument("--compare-iterations", type=int, default=30,
                        help="L-BFGS against Adam: final loss after this many iterations at 128 px (0: skip)")
    args = parser.parse_args()
    if not shared_data_or_skip(DATA):
        return

    content = load_image(DATA / "content" / "tubingen.jpg")
    style = load_image(DATA / "style" / "starry_night.jpg")
    cpu = peak_gflops()
    peak = float(cpu["peak_gflops"])
    hed = st.load_backbone("vgg16-hed")
    vgg19_weighted = st.backbone_unavailable("vgg19") is None
    backbones = {"vgg16-hed": hed, "vgg19": st.load_backbone("vgg19") if vgg19_weighted else st.vgg19_backbone(None)}
    cases = []
    for size in args.sizes:
        height, width = st.fit_size(content, size).shape[:2]
        hed_flops = st.flops_per_evaluation(hed, height, width)
        reference_result = measure(f"reference {size}", lambda: reference(hed, content, style, size,
                                                                          args.reference_iterations), hed_flops, peak)
        for name, backbone in backbones.items():
            extractor = st.FeatureExtractor(backbone)
            flops = st.flops_per_evaluation(backbone, height, width)
            result = measure(f"{name} {size}", lambda: ours(extractor, content, style, size, args.iterations), flops, peak)
            case = {"backbone": name, "size": [width, height], "gflop_per_evaluation": round(flops / 1e9, 1), **result}
            if name == "vgg16-hed":
                case["reference"] = reference_result
                case["speedup_per_iteration"] = round(
                    reference_result["seconds_per_iteration"] / result["seconds_per_iteration"], 2)
                case["speedup_met"] = case["speedup_per_iteration"] >= TARGET_SPEEDUP
            cases.append(case)

    report = {
        "cpu": cpu,
        "load_average_at_end": os.getloadavg(),
        "vgg19_weights": "imagenet" if vgg19_weighted else "random (ImageNet file absent; same arithmetic)",
        "cases": cases,
        "targets": {"speedup_per_iteration": TARGET_SPEEDUP, "full_run_seconds": TARGET_FULL_RUN_S},
    }
    if args.compare_iterations:
        print("bench: optimizers", file=sys.stderr, flush=True)
        report["optimizers_at_128px"] = {
            optimizer: {"iterations": args.compare_iterations, **result.to_json()["final"]}
            for optimizer in st.OPTIMIZERS
            for result in [st.stylize(content, style, st.StyleSettings(
                size=128, iterations=args.compare_iterations, optimizer=optimizer, backbone="vgg16-hed"))]
        }
    if args.full_iterations:
        print("bench: full run", file=sys.stderr, flush=True)
        cpu_start = time.process_time()
        result = st.stylize(content, style, st.StyleSettings(size=256, iterations=args.full_iterations,
                                                             backbone="vgg16-hed"))
        report["full_run"] = {
            "backbone": "vgg16-hed", "size": list(result.image_bgr.shape[1::-1]), "iterations": result.iterations,
            "evaluations": result.evaluations, "seconds": round(result.seconds, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "met": result.seconds <= TARGET_FULL_RUN_S,
        }
        report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
