"""Launch artifacts: rank files, hostfiles, Slurm and torchrun launchers, engine exports, the manifest."""
