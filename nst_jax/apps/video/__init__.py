"""Video style transfer with temporal consistency (Ruder, Dosovitskiy & Brox, *Artistic style transfer
for videos*): frames in and out (`frames`), optical flow and its consistency weights (`flow`), the
warped earlier frames a frame's run is held to (`temporal`), the order of the runs for each method
(`methods`), the video's files (`files`) and the driver (`driver`); `nst-jax video`.

Every frame is an ordinary nst_jax run (resumable, locked, atomic, with a memory plan) whose content
is the frame, whose initial image is the previous stylised frame warped by the flow, and whose loss
has the temporal term (`losses.temporal_loss`, Config fields `temporal` and `temporal_weight`).
Needs the `video` extra: pip install 'nst_jax[video]' (PyAV and OpenCV).
"""
