"""Is the pruned model faster: PyTorch's sparse tensors; ONNX graphs timed on onnxruntime, DeepSparse in its venv."""
