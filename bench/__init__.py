"""scripts/bench: inference speed of the seed's method, the agent, ONNX Runtime and INT8, side by side."""
