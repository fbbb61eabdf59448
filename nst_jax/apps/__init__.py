"""Applications built on the run: video with temporal consistency (`video`), the studio, a local web app
for uploading images and watching runs (`studio`), and `tune`, which measures this machine's convolution
forms ahead of a run.
"""
