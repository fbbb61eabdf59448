"""This machine: what its processor offers, its identity (which cache folder its measurements and builds
belong to), the XLA compiler options and compiled programs kept across runs, and what a command sets in
its own process (the C allocator keeping freed memory).
"""
