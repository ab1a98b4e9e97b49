"""On-device training: compile a sparse-update training step of an int8 model to static-memory C.

The pipeline follows Lin et al., "On-Device Training Under 256KB Memory" (NeurIPS 2022): the
real int8 graph is trained with quantization-aware scaling (QAS), only a chosen set of biases,
layers and input-channel slices is updated, the backward graph is derived and pruned at compile
time, and each parameter is updated as soon as its gradient exists so that gradient buffers are
freed at once. `compile_training` in `tinycompile.training.compiler` runs the whole pipeline.
"""
