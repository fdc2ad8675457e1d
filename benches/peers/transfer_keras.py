"""The Fashion-MNIST transfer experiment of `tlx demo`, in Keras (TensorFlow backend), for
side-by-side timing and accuracy (BENCHMARKS.md). Same protocol as
crates/tlx-train/src/transfer_demo.rs:

  validation = first 5,000 training images; task A = 8 classes (not 5, 6; labels > 6 minus 2);
  task B = shirt (1) vs sandal (0), first 200 training images; A = Flatten -> Dense 300, 100,
  50, 50, 50 (selu) -> Dense 8 softmax, SGD(1e-3), 20 epochs, batch 32; B the same with one
  sigmoid unit; B-on-A = A's hidden layers (cloned) + new sigmoid unit, frozen 4 epochs then
  unfrozen 16 epochs with SGD(1e-4).

Usage: benches/peers/.venv/bin/python benches/peers/transfer_keras.py DATA_DIR [SEED] [--threads N]
Prints one JSON object like `tlx demo --json`.
"""

import gzip
import json
import os
import struct
import sys
import time

import numpy as np


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim :], np.uint8).reshape(dims)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    threads = None
    if "--threads" in sys.argv:
        threads = int(sys.argv[sys.argv.index("--threads") + 1])
        args = [a for a in args if a != str(threads)]
    data_dir = args[0] if args else "data/fashion-mnist"
    seed = int(args[1]) if len(args) > 1 else 42
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    x_full = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz")) / 255.0
    y_full = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    x_test = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")) / 255.0
    y_test = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x_valid, x_train = x_full[:5000], x_full[5000:]
    y_valid, y_train = y_full[:5000], y_full[5000:]

    def split(x, y):
        b = (y == 5) | (y == 6)
        y_a = y[~b].copy()
        y_a[y_a > 6] -= 2
        y_b = (y[b] == 6).astype(np.float32)
        return (x[~b], y_a), (x[b], y_b)

    (xa, ya), (xb, yb) = split(x_train, y_train)
    (xva, yva), (xvb, yvb) = split(x_valid, y_valid)
    (xta, yta), (xtb, ytb) = split(x_test, y_test)
    xb, yb = xb[:200], yb[:200]

    def mlp(out, act):
        m = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten()])
        for n in (300, 100, 50, 50, 50):
            m.add(keras.layers.Dense(n, activation="selu"))
        m.add(keras.layers.Dense(out, activation=act))
        return m

    t0 = time.perf_counter()
    a = mlp(8, "softmax")
    a.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(1e-3), metrics=["accuracy"])
    a.fit(xa, ya, epochs=20, batch_size=32, validation_data=(xva, yva), verbose=0)
    acc_a = a.evaluate(xta, yta, verbose=0)[1]
    t1 = time.perf_counter()
    b = mlp(1, "sigmoid")
    b.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(1e-3), metrics=["accuracy"])
    b.fit(xb, yb, epochs=20, batch_size=32, validation_data=(xvb, yvb), verbose=0)
    acc_b = b.evaluate(xtb, ytb, verbose=0)[1]
    t2 = time.perf_counter()
    clone = keras.models.clone_model(a)
    clone.set_weights(a.get_weights())
    on_a = keras.Sequential(clone.layers[:-1])
    on_a.add(keras.layers.Dense(1, activation="sigmoid"))
    for layer in on_a.layers[:-1]:
        layer.trainable = False
    on_a.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(1e-3), metrics=["accuracy"])
    on_a.fit(xb, yb, epochs=4, batch_size=32, validation_data=(xvb, yvb), verbose=0)
    for layer in on_a.layers[:-1]:
        layer.trainable = True
    on_a.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(1e-4), metrics=["accuracy"])
    on_a.fit(xb, yb, epochs=16, batch_size=32, validation_data=(xvb, yvb), verbose=0)
    acc_on_a = on_a.evaluate(xtb, ytb, verbose=0)[1]
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "engine": f"keras {keras.__version__} / tensorflow {tf.__version__}",
                "seed": seed,
                "acc_A": acc_a,
                "acc_B_scratch": acc_b,
                "acc_B_on_A": acc_on_a,
                "seconds": t3 - start,
                "seconds_A": t1 - t0,
                "seconds_B_scratch": t2 - t1,
                "seconds_B_on_A": t3 - t2,
            }
        )
    )


if __name__ == "__main__":
    main()
