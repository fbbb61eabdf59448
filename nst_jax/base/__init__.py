"""What every package builds on: the one error type users see, and the registries of statistics and solvers.
"""
