"""The GPU execution (`moeplace[runtime]`): runs a launch manifest one process per GPU and measures it.

What a run does and what it measured, without torch, is `moeplace.runmodel`. Here every module that moves
tensors gets torch through `moeplace.runtime.deps.import_torch`, which turns its absence into an
`InputError` asking for `pip install moeplace[runtime]`.

    worker          `python -m moeplace.runtime.worker --manifest PATH --out DIR`: the process entry point
                    (arguments, identity, one-line failures and exit codes)
    rank_run        one rank's run in named steps: set up, build the step, warm up, measure, collect, write
    generic_engine  executes any flow's schedules (gloo on CPU, NCCL + streams + CUDA graphs on GPU)
    fused_engine    the ep flow's fused path: one `EpStep` per MoE layer
    epstep          the fused expert-parallel layer step (whole-step CUDA graph, micro-batches overlapped)
    transports      how an `EpStep` moves rows: NCCL all-to-all, symmetric memory by SM stores or by copy engine
    expert_runner   one expert behind static buffers, one CUDA graph per token bucket
    plain_ep        the plain torch.distributed EP step, the yardstick the fused step is measured against
    comm            the process group, rendezvous store, point-to-point transfers, failure reports
    calibrate       the measurements behind `moeplace calibrate`
"""
