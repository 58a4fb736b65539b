"""The bundled runtime: executes a launch manifest expert-per-GPU and measures it against the cost model.

Planning never imports torch. Inside this package only the modules that move tensors import it, through
`moeplace.runtime.deps.import_torch`, which turns its absence into an `InputError` asking for
`pip install moeplace[runtime]`. The torch-free modules (`identity`, `workload`, `schedule`, `measured`,
`validation`) are what `moeplace validate` and the tests of the launch artifacts use.

    worker      `python -m moeplace.runtime.worker --manifest PATH --out DIR`: one process per GPU
    engine      the per-rank executor of a schedule (gloo on CPU, NCCL + CUDA graphs on GPU)
    epstep      the fused expert-parallel layer step (whole-step CUDA graph, two micro-batches)
    calibrate   the measurements behind `moeplace calibrate`
"""
