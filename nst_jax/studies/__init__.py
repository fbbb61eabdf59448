"""Many runs and what they show: sweeps (locally or on Ray), grids, reports, the statistics gallery,
dissection, and the paper's results.
"""
