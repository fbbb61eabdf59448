"""Everything nst_jax reads and writes: atomic writes, the one reader of untrusted files, images, the run's
output layout, checkpoints, the records read back, and which files are nst_jax's own.
"""
