"""The plain ONNX Runtime script a user would write (the whole-process yardstick): read and
decode each photo, centre-crop, resize, batch 8, run the exported model with
ONNX Runtime's default session options, print the top-1. No agent code.

    python -m bench.ort_script MODEL.onnx SIZE CROP_FRACTION MEAN STD RGB|BGR PHOTO...
"""
import sys

import cv2
import numpy as np
import onnxruntime as ort


def main(argv):
    onnx_path, size, fraction, mean, std, order = argv[:6]
    size, fraction = int(size), float(fraction)
    mean = np.array([float(v) for v in mean.split(",")], np.float32).reshape(3, 1, 1)
    std = np.array([float(v) for v in std.split(",")], np.float32).reshape(3, 1, 1)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    paths = argv[6:]
    for start in range(0, len(paths), 8):
        batch = []
        for path in paths[start:start + 8]:
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if order == "RGB":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            h, w = img.shape[:2]
            side = int(min(h, w) * fraction)
            top, left = (h - side) // 2, (w - side) // 2
            img = cv2.resize(img[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_CUBIC)
            img = img.transpose(2, 0, 1).astype(np.float32)
            batch.append((img - mean) / std)
        probs = session.run(None, {name: np.stack(batch)})[0]
        for path, row in zip(paths[start:start + 8], probs):
            print(path, int(row.argmax()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
