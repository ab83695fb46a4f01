"""Sphinx configuration of the course sites (``calibkd.course.site``).

One configuration for both editions; ``calibkd.course.site`` passes what
differs (title, announcement) with ``-D``. Nothing is executed
(``nb_execution_mode = "off"``: pages show the committed outputs) and nothing
is loaded from the network: the theme's assets are in the site, and MathJax 2
(from jupyter-server-mathjax) is copied into ``_static/mathjax``.
"""

project = "calibkd"
author = "calibkd"
copyright = "calibkd authors"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"

# myst-nb: render the committed outputs, never execute
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_update_mathjax = False  # its MathJax 3 options do not apply to the MathJax 2 served below
myst_heading_anchors = 3

# MathJax 2 served from the site (copied to _static/mathjax), never from a CDN
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
mathjax2_config = {
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
}
html_static_path: list[str] = []  # set by calibkd.course.site: the build folder with MathJax and calibkd.css
html_css_files = ["calibkd.css"]

html_theme = "sphinx_book_theme"
html_title = "calibkd"
html_favicon = "favicon.svg"  # relative to this folder; without one, browsers ask for /favicon.ico
html_last_updated_fmt = None
html_copy_source = True
html_sourcelink_suffix = ""  # _sources/0N_name.ipynb: the "download notebook" link gives the notebook itself
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
    "announcement": "",
}
html_context = {"default_mode": "light"}
