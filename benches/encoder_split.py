"""Splits the shipped f32 ONNX into one sequence encoder and the fusion head, for the
`examples/encoder_split.rs` measurement (issue 5: do four encoders run concurrently beat one
graph?). The encoders share one structure, so one extracted encoder stands for all four.

Usage: python benches/encoder_split.py MODEL.onnx OUT_DIR
Writes OUT_DIR/encoder.onnx (sag_t1w [1,5,160,160] → token [1,128]) and OUT_DIR/fusion.onnx
(four tokens + clinical → probabilities).
"""
import os
import sys

import onnx
import onnx.utils

SEQUENCES = ("sag_t1w", "sag_t2w", "sag_t2fs", "ax_t2w")


def main():
    model, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    graph = onnx.load(model).graph
    tokens = []
    for s in SEQUENCES:
        # The encoder's output: the projection after the mean/max pooling.
        names = [o for n in graph.node for o in n.output if o.startswith(f"/model/{s}/proj/")]
        if len(names) != 1:
            raise SystemExit(f"{model}: cannot find the {s} encoder's output ({names})")
        tokens.append(names[0])
    onnx.utils.extract_model(model, os.path.join(out, "encoder.onnx"), ["sag_t1w"], [tokens[0]])
    onnx.utils.extract_model(model, os.path.join(out, "fusion.onnx"), tokens + ["clinical"], ["probabilities"])
    print(" ".join(tokens))


if __name__ == "__main__":
    main()
