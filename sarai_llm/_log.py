"""The package's logger (``sarai_llm``): silent unless the application configures logging.

Without a handler of its own, Python's last-resort handler would print the
package's warnings to stderr; the ``NullHandler`` keeps a library quiet.
Kept out of ``sarai_llm/__init__.py``: importing ``logging`` costs ~6 ms, and
nothing logs before a gateway exists.
"""

from __future__ import annotations

import logging

log = logging.getLogger("sarai_llm")
log.addHandler(logging.NullHandler())
