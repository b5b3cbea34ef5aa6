"""WSGI entry point for Keystone under gunicorn (test harness only).

Keystone parses sys.argv with oslo.config while its WSGI module is being
imported; gunicorn's own command line would be rejected ("unrecognized
arguments") and the worker would exit.  Strip the arguments first.
The configuration directory is taken from $OS_KEYSTONE_CONFIG_DIR.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
