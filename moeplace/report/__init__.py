"""Reports: the comparison of the expert-per-GPU design with the 4-8-experts-per-GPU baseline."""
