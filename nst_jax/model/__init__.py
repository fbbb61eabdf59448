"""VGG19: its layers by name and geometry, the Flax network, the convolutions it is computed with (XLA's,
Winograd's and the fused native kernel), preprocessing, and its weights (loaded beside it and checked).
"""
