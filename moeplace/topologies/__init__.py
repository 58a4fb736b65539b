"""Where every GPU sits in the network, and what a byte costs between any two of them."""

from moeplace.topologies.base import TIER_CORE, TIER_LEAF, TIER_NVLINK, TIER_POD, TIER_SAME_GPU, Fabric, TierCosts

__all__ = ["Fabric", "TierCosts", "TIER_SAME_GPU", "TIER_NVLINK", "TIER_LEAF", "TIER_POD", "TIER_CORE"]
