"""The package's one logging module: every message goes through scanpy's logger.

Users control verbosity the scanpy way (``sc.settings.verbosity``).
"""

from __future__ import annotations

from scanpy import logging as _logg

info = _logg.info
warning = _logg.warning
