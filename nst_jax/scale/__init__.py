"""Beyond one device: the memory a run needs, an image split across devices, and runs spanning hosts.
"""
