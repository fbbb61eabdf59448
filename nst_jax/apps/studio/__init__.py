"""The studio (`nst-jax studio [FOLDER]`): a local web app to upload a content image and
style images, set the main options, start, stop and continue runs (queued, one at a time), watch the
running one, compare finished ones side by side and download an image with its sidecar. Every run is
an ordinary nst_jax run in FOLDER/runs/, read back from its files after a restart.

`folder` (the layout), `uploads` (checked images), `request` (the options → a Config), `jobs` (the
queue and its worker), `view` (what the page is sent), `app` (the Starlette app and its guard),
`studio.html` and `studio.js` (the page: the run in view large, with a before/after view and its loss
plot). Needs the `studio` extra: pip install 'nst_jax[studio]'.
"""
