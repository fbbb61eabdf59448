"""The nst_jax documentation site: Sphinx with MyST Markdown pages and API pages from the docstrings.

Build (warnings are errors, as in CI):  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))
os.environ.setdefault("JAX_PLATFORMS", "cpu")   # autodoc imports the modules; no accelerator needed

project = "nst_jax"
author = "nst_jax's authors"
copyright = "nst_jax's authors (code: MIT; weights: see weights/README.md)"
release = "0.1.0"

extensions = ["myst_parser", "sphinx.ext.autodoc", "nstdocs"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**/runs", "dissect/reduction.md"]   # the table is included in dissect.md

# MyST: GitHub-style heading anchors (the pages' own `#…` links) and <img> tags as images (copied
# and checked); every link to a page, a heading or a file is checked, and a missing one warns
myst_enable_extensions = ["html_image"]
myst_heading_anchors = 4

# docstrings: plain prose whose `backticks` are code
default_role = "literal"
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
add_module_names = False

html_theme = "furo"
html_title = "nst_jax"
