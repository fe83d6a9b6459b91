"""Derive the model: data, the DNN, distillation, training, calibration, the build."""
