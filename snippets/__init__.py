"""Attention, Executed: the code shown on the site, one module per concept.

Every module here is included into a page (pymdownx.snippets sections), executed when the
site is built, and tested against an independent reference in tests/.
"""
