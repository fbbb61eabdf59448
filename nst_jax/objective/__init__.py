"""The style-transfer objective: losses and style statistics as pure functions; only the objective
combines weights.
"""
