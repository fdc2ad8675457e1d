#!/usr/bin/env python3
"""TensorFlow-CPU / Keras inference throughput of the models in benches/inference.rs:
VGG16 and ResNet50 from keras.applications, include_top=False, weights=None (random), 224x224x3,
batch 1 and 8, `model(x, training=False)` inside tf.function. Prints the median ms/image:

    benches/peers/.venv/bin/python benches/peers/inference_tf.py [--threads 2] [--runs 5]
"""
import argparse
import os
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--archs", default="vgg16,resnet50")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from tensorflow import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    makers = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}
    for name in args.archs.split(","):
        model = makers[name](include_top=False, weights=None, input_shape=(224, 224, 3))
        f = tf.function(lambda x: model(x, training=False))
        for batch in (1, 8):
            x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32))
            f(x).numpy()
            secs = []
            for _ in range(args.runs):
                t = time.perf_counter()
                f(x).numpy()
                secs.append(time.perf_counter() - t)
            secs.sort()
            per = secs[len(secs) // 2] / batch
            print(f"summary: tf inference {name} b{batch} {args.threads}t: {per * 1e3:.1f} ms/image, {1 / per:.2f} images/s (median of {args.runs})")


if __name__ == "__main__":
    main()
