# Sphinx settings of kt_nb's documentation site. `python docs/build.py` (or `make docs`) gathers the pages
# from the notebooks into _site/src and builds them into _site/html; nothing is fetched.
project = 'kt_nb'
author = 'kt_nb developers'
extensions = ['myst_nb']
exclude_patterns = ['_build', '**.ipynb_checkpoints']
html_theme = 'pydata_sphinx_theme'
html_title = 'kt_nb'
html_static_path = ['_static']
html_js_files = ['plotly.min.js']   # one local copy for every figure on every page (see views.figure_html)
html_css_files = ['kt_nb.css']
html_theme_options = {'navigation_with_keys': False, 'show_toc_level': 2, 'use_edit_page_button': False,
                      'secondary_sidebar_items': ['page-toc']}
html_sidebars = {'**': []}   # the header holds the sections; pages are one level deep
html_show_sourcelink = False
html_copy_source = False

nb_execution_mode = 'off'      # pages show the notebooks' stored outputs
nb_ipywidgets_js = {}          # the explorer appears as its static snapshot, with no widget manager from a CDN
nb_mime_priority_overrides = [('html', 'application/vnd.jupyter.widget-view+json', None),
                              ('html', 'application/vnd.plotly.v1+json', None)]
myst_enable_extensions = ['colon_fence', 'attrs_block']   # attrs_block: {.kt-def} marks a definition's section
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type']   # headings that skip a level; widget state
html_context = {'default_mode': 'light'}   # no theme switch to settle on first load
smartquotes = False   # text as typed: `--option` stays two hyphens (no en dash), quotes stay straight
