"""The portal: a single-page web interface served by Galley, a client of the ARM API like the CLI.

routes.install(app) serves the page and its static files; see README.md for the stack and why.
"""
