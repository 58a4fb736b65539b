"""The model of a run, without torch: what each rank of a launch manifest does and what the run measured.

`moeplace validate`, the launch checks and the CPU tests use these; `runtime/` (the GPU execution) runs them.

    identity     which manifest entry this process is (host, LOCAL_RANK), and the launch checks
    workload     the run's routing draws and the rank table (which rank holds which expert)
    schedule     one rank's numpy schedule of a step: the transfers and expert calls of each layer
    measured     `measured.json`, the run's results (schema `Measured`)
    tiers        the bytes a run moved per fabric tier, measured against the objective's
    profilefit   a hardware profile fitted from the calibration's measurements
    validation   measured against predicted (`moeplace validate`); the fused step's charge is
                 `costmodel/fusedstep.py`
"""
