"""Sphinx configuration of the course site: `python tools/build_site.py` (README, "The course site").

The site is built from the committed notebooks as they are (never executed here), with MyST-NB, and
reads the repository root as its source: the notebooks keep their relative links (to each other, to
README.md, benchmarks/README.md and data/results/) and those links work on the site as on GitHub.
"""

project = "Residual networks, hands on"
author = "the course's authors"
copyright = "the course's authors (see LICENSE)"

extensions = ["myst_nb", "sphinx.ext.mathjax"]
root_doc = "docs/index"
# The pages of the site; everything else in the repository is a file a page may link to.
include_patterns = ["docs/index.md", "docs/article-companion*.md", "README.md", "CONTRIBUTING.md",
                    "notebooks/[0-9][0-9]_*.ipynb", "benchmarks/README.md", "data/README.md",
                    "data/results/README.md"]
exclude_patterns = ["build", ".git", "**/.ipynb_checkpoints"]

# The notebooks are shown with the outputs they were committed with (quick mode, on a CPU).
nb_execution_mode = "off"
# A widget cannot run on a static page: show what a reader without a kernel should see instead (the
# finished progress bar's text, the comparison's stored picture), and load no widget JavaScript
# from a CDN the course's machines cannot reach.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
myst_heading_anchors = 4  # "#lessons-over-seeds" and the like, as GitHub makes them

html_theme = "furo"
html_title = "Residual networks, hands on"
# MathJax from the npm package that tools/build_site.py puts here, not from a CDN.
html_static_path = ["../build/site-tools/static"]
mathjax_path = "mathjax/tex-chtml.js"
html_copy_source = False
html_show_sourcelink = False
html_favicon = "favicon.svg"  # without one, every browser asks the server for /favicon.ico and logs a 404
