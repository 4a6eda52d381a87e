"""Sphinx configuration for tsstc-sc (Read the Docs and local builds).

Offline builds (no network, e.g. CI): ``TSSTC_DOCS_OFFLINE=1 sphinx-build -W -b html docs docs/_build/html``
turns intersphinx off; references to other projects then render as plain text.
"""

import os
import warnings
from datetime import date
from importlib import metadata

from sphinx.deprecation import RemovedInSphinx10Warning

# sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates; nothing for us to fix
warnings.filterwarnings("ignore", category=RemovedInSphinx10Warning, module="sphinx_autodoc_typehints")

project = "tsstc-sc"
author = "tsstc-sc developers"
copyright = f"{date.today():%Y}, {author}"
release = version = metadata.version("tsstc-sc")

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx_autodoc_typehints",
    "sphinxcontrib.bibtex",
]

master_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "tutorials/README.md", "**.ipynb_checkpoints"]

# API reference: one page per public function, numpy docstrings, types from the annotations
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
typehints_defaults = "braces"
always_document_param_types = True

# notebooks are committed with their outputs; the docs never train a model
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath", "html_image"]
myst_heading_anchors = 3

bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "author_year"

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable", None),
    "squidpy": ("https://squidpy.readthedocs.io/en/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}
if os.environ.get("TSSTC_DOCS_OFFLINE"):
    intersphinx_mapping = {}

html_theme = "sphinx_book_theme"
html_title = "tsstc-sc"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": "https://github.com/tsstc-sc/tsstc-sc",
    "use_repository_button": True,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
}


def _join_returns_prose(app, what, name, obj, options, lines):
    """Join wrapped prose lines of a numpydoc ``Returns`` section into one paragraph.

    Napoleon reads every unindented line there as a new return value, which turns a wrapped sentence
    into a bullet list; ``name``/description pairs (an indented line follows) are left alone.
    """
    for start in (
        i + 2 for i, line in enumerate(lines[:-1]) if line == "Returns" and lines[i + 1] == "-------"
    ):
        i = start
        while i + 1 < len(lines) and lines[i] and not lines[i].startswith("-"):
            if (
                lines[i + 1]
                and not lines[i + 1][0].isspace()
                and not lines[i][0].isspace()
                and lines[i + 2 : i + 3] != ["-" * len(lines[i + 1])]
            ):
                lines[i : i + 2] = [f"{lines[i]} {lines[i + 1]}"]
            else:
                i += 1


def setup(app):
    app.connect("autodoc-process-docstring", _join_returns_prose, priority=400)
