#!/usr/bin/env python3
"""ONNX Runtime (CPU execution provider) as a peer: inference of keras.applications VGG16 /
ResNet50 (include_top=False, weights=None, 224x224x3, converted with tf2onnx from the Keras
model's inference function, so the graph is the one TF runs) and the forward convolution on
the VGG16 layer shapes of benches/conv.rs (one ONNX Conv node with bias, NCHW as ONNX
defines it, batch 8, 3x3 pads 1). Graph optimizations all on, intra-op threads as asked,
one inter-op thread. Prints median ms/image (models) and GFLOP/s (convs):

    benches/peers/.venv/bin/python benches/peers/ort.py [--threads 2] [--runs 5]
        [--archs vgg16,resnet50] [--batches 1,8] [--layers block1_conv1,...|all|none]

Needs benches/peers/setup.sh (numpy, tensorflow-cpu, onnxruntime, onnx, tf2onnx).
"""
import argparse
import os
import time

# name, input size, c_in, c_out: every distinct 3x3 conv shape of VGG16 (benches/conv.rs).
VGG16_CONVS = [
    ("block1_conv1", 224, 3, 64),
    ("block1_conv2", 224, 64, 64),
    ("block2_conv1", 112, 64, 128),
    ("block2_conv2", 112, 128, 128),
    ("block3_conv1", 56, 128, 256),
    ("block3_conv2", 56, 256, 256),
    ("block4_conv1", 28, 256, 512),
    ("block4_conv2", 28, 512, 512),
    ("block5_conv1", 14, 512, 512),
]
DEFAULT_LAYERS = "block1_conv1,block3_conv1,block5_conv1"
CONV_BATCH = 8


def session(model_bytes, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def median_seconds(fn, runs):
    fn()  # warm-up (first run allocates and picks kernels)
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], times[0]


def keras_to_onnx(name):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx
    from tensorflow import keras

    makers = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}
    model = makers[name](include_top=False, weights=None, input_shape=(224, 224, 3))
    fn = tf.function(lambda x: model(x, training=False))
    spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    return proto.SerializeToString(), fn


def conv_model(c_in, c_out):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.uniform(-1, 1, (c_out, c_in, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.uniform(-1, 1, (c_out,)).astype(np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, c_in, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, c_out, None, None])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--archs", default="vgg16,resnet50")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--layers", default=DEFAULT_LAYERS)
    p.add_argument("--check", action="store_true", help="compare ORT's output with TF's once per model")
    args = p.parse_args()
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    for name in [a for a in args.archs.split(",") if a]:
        model_bytes, tf_fn = keras_to_onnx(name)
        sess = session(model_bytes, args.threads)
        inp = sess.get_inputs()[0].name
        if args.check:
            x = rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
            ours, ref = sess.run(None, {inp: x})[0], tf_fn(x).numpy()
            print(f"check: ort vs tf {name}: max |diff| {np.abs(ours - ref).max():.3g} (max |y| {np.abs(ref).max():.3g})")
        for batch in [int(b) for b in args.batches.split(",") if b]:
            x = rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
            med, best = median_seconds(lambda: sess.run(None, {inp: x}), args.runs)
            print(f"peer: onnxruntime {ort.__version__} inference {name} b{batch} {args.threads}t: "
                  f"{med / batch * 1e3:.1f} ms/image, {batch / med:.2f} images/s "
                  f"(median of {args.runs}; best {best / batch * 1e3:.1f} ms/image)", flush=True)
    wanted = {
        "all": [c[0] for c in VGG16_CONVS],
        "none": [],
    }.get(args.layers, args.layers.split(","))
    for name, hw, c_in, c_out in VGG16_CONVS:
        if name not in wanted:
            continue
        sess = session(conv_model(c_in, c_out), args.threads)
        x = rng.uniform(-1, 1, (CONV_BATCH, c_in, hw, hw)).astype(np.float32)
        med, best = median_seconds(lambda: sess.run(None, {"x": x}), args.runs)
        flops = 2.0 * CONV_BATCH * hw * hw * c_out * 9 * c_in
        print(f"peer: onnxruntime {ort.__version__} conv {name} forward {args.threads}t: "
              f"{flops / med / 1e9:.1f} GFLOP/s (median of {args.runs}: {med * 1e3:.2f} ms; "
              f"best {flops / best / 1e9:.1f} GFLOP/s)", flush=True)


if __name__ == "__main__":
    main()
