#!/usr/bin/env python3
"""TensorFlow-CPU / Keras training-step time of the transfer set-ups `tlx bench train` runs:
a keras.applications base (include_top=False, pooling="avg", random weights) in a Sequential
with a new Dense softmax head, Adam(1e-3), sparse categorical cross-entropy, batch 32,
224x224x3 inputs; the base frozen, or (--unfreeze-from LAYER) trainable from LAYER on
(layers below it frozen: the same split as `tlx bench train --unfreeze-from LAYER`).
Steps run through `train_on_batch` (a compiled tf.function). Prints the median ms/step:

    benches/peers/.venv/bin/python benches/peers/train_tf.py --arch vgg16 [--threads 2]
    benches/peers/.venv/bin/python benches/peers/train_tf.py --arch resnet50 --unfreeze-from conv5_block1_1_conv
"""
import argparse
import os
import resource
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="vgg16")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--unfreeze-from", default=None)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    makers = {
        "vgg16": keras.applications.VGG16,
        "vgg19": keras.applications.VGG19,
        "resnet50": keras.applications.ResNet50,
        "mobilenetv2": keras.applications.MobileNetV2,
    }
    s = args.size
    base = makers[args.arch](include_top=False, weights=None, input_shape=(s, s, 3), pooling="avg")
    if args.unfreeze_from is None:
        base.trainable = False
    else:
        names = [l.name for l in base.layers]
        at = names.index(args.unfreeze_from)
        for layer in base.layers[:at]:
            layer.trainable = False
    model = keras.Sequential([keras.Input((s, s, 3)), base, keras.layers.Dense(args.classes, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (args.batch, s, s, 3)).astype(np.float32)
    y = (np.arange(args.batch) % args.classes).astype(np.int64)
    model.train_on_batch(x, y)
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    times.sort()
    step = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    what = "frozen base" if args.unfreeze_from is None else f"from {args.unfreeze_from}"
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"peer: tf train {args.arch} ({what}) b{args.batch} {args.threads}t: {step * 1e3:.0f} ms/step, "
        f"{1 / step:.3f} steps/s, {trainable} trainable params, peak RSS {rss:.0f} MiB (median of {args.reps})"
    )


if __name__ == "__main__":
    main()
