"""Synthesis: the over-complete trainable architectures and (later) sparsification."""

from dmm_engine.synthesis.build import ff3, ff3_soft_links

__all__ = ["ff3", "ff3_soft_links"]
