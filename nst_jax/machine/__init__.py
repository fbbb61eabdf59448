"""This machine: what its processor offers, its identity (which cache folder its measurements and builds
belong to), and the XLA compiler options and compiled programs kept across runs.
"""
