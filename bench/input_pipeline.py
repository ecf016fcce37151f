"""Input pipeline throughput against the training step and the original study's ImageDataGenerator.

    python bench/input_pipeline.py                       # CIFAR-10, 5,000 images, 3 repeats
    python bench/input_pipeline.py --dataset mnist --images 10000

Three numbers, each the median of --repeats passes over the same images, same batch size,
same transforms (rotation 15°, shifts 0.1, shear 0.2°, zoom 0.2, horizontal flip, nearest fill):
  pipeline     cnn.pipeline.training_dataset: shuffle, batch, augment (one affine per image), prefetch
  train step   the model's fit on batches already in memory (no augmentation): what the model consumes
  legacy       tf_keras' ImageDataGenerator.flow, the original study's approach (needs scipy: the
               `bench` extra)
  train step, augmenting on device   the same fit with --augment-on-device: the model's first
               layer augments each batch inside the step (here the device is this CPU)
Goals (issue 7): pipeline >= 5x the train step on this CPU, and >= 2x the legacy generator.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from common import median, print_table, write_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON record (default bench/results/input_pipeline.json)")
    args = parser.parse_args()

    from cnn.config import TrainConfig
    from cnn.data import load_dataset, unit_float

    config = TrainConfig(dataset=args.dataset, batch_size=args.batch_size, horizontal_flip=True)
    data = load_dataset(args.dataset, data_dir=args.data_dir, limit=int(args.images / 0.9) + 1)
    stored, y = data.x_train[: args.images], data.y_train[: args.images]  # uint8, as the pipeline gets them
    x = unit_float(stored)  # what the model and the legacy generator take: floats in [0, 1]
    images = (len(x) // args.batch_size) * args.batch_size

    runs = {"pipeline": [], "train step": [], "legacy generator": [], "train step, augmenting on device": []}
    for repeat in range(args.repeats):
        runs["pipeline"].append(images / _time_pipeline(stored, y, config, repeat))
        runs["legacy generator"].append(images / _time_legacy(x, y, config))
    runs["train step"] = [images / s for s in _time_train_step(x, y, config, data, args.repeats)]
    runs["train step, augmenting on device"] = [
        images / s for s in _time_train_step(x, y, config.replace(augment_on_device=True), data, args.repeats)]

    medians = {name: median(values) for name, values in runs.items()}
    ratios = {"pipeline / train step": medians["pipeline"] / medians["train step"],
              "pipeline / legacy generator": medians["pipeline"] / medians["legacy generator"],
              "train step / train step augmenting on device":
                  medians["train step"] / medians["train step, augmenting on device"]}
    print_table(f"input pipeline, {args.dataset}, {images:,} images, batch {args.batch_size}, "
                f"median of {args.repeats}", ["what", "images/s (median)", "runs"],
                [[name, medians[name], ", ".join(f"{v:,.0f}" for v in values)] for name, values in runs.items()])
    print_table("ratios (goals: >= 5 and >= 2; the last has none)", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    write_record("input_pipeline", {"command": f"python bench/input_pipeline.py --dataset {args.dataset} "
                                               f"--images {args.images} --repeats {args.repeats}",
                                    "dataset": args.dataset, "images": images, "batch_size": args.batch_size,
                                    "repeats": args.repeats, "images_per_second": runs, "medians": medians,
                                    "ratios": ratios, "goals": {"pipeline / train step": 5,
                                                                "pipeline / legacy generator": 2}}, args.out)


def _time_pipeline(x, y, config, epoch: int) -> float:
    from cnn.pipeline import training_dataset

    dataset = training_dataset(x, y, config, epoch=epoch)
    started = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - started


def _time_train_step(x, y, config, data, repeats: int) -> list[float]:
    """Seconds per pass of fit over in-memory batches, after one untimed pass (tracing, warm-up)."""
    import tensorflow as tf

    from cnn.model import build_model

    model = build_model(config, data.input_shape, data.num_classes)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.batch_size, drop_remainder=True).cache()
    model.fit(batches, epochs=1, verbose=0)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(batches, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
    return seconds


def _time_legacy(x, y, config) -> float:
    try:
        from tf_keras.preprocessing.image import ImageDataGenerator
        import scipy  # noqa: F401 - ImageDataGenerator's affine transforms need it
    except ImportError as error:
        raise SystemExit(f"error: the legacy generator needs scipy ({error}); "
                         "install the bench extra: .venv/bin/pip install -c constraints.txt -e '.[bench]'")
    generator = ImageDataGenerator(rotation_range=config.rotation_degrees, width_shift_range=config.width_shift,
                                   height_shift_range=config.height_shift, shear_range=config.shear_degrees,
                                   zoom_range=config.zoom, horizontal_flip=config.horizontal_flip,
                                   fill_mode=config.fill_mode)
    flow = generator.flow(x, y, batch_size=config.batch_size, shuffle=True, seed=0)
    started = time.perf_counter()
    for _ in range(len(x) // config.batch_size):
        next(flow)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
