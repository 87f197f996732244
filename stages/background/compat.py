"""Import diffusers safely next to colour-science.

colour-science puts a ``MagicMock`` into ``sys.modules["matplotlib"]`` when matplotlib is not
installed. diffusers and transformers probe optional packages with ``importlib.util.find_spec``,
which raises ``ValueError: matplotlib.__spec__ is not set`` on that mock, so importing diffusers
after colour (the recolor stage) fails. Hiding spec-less entries during the import avoids it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def spec_less_modules_hidden():
    hidden = {
        name: mod
        for name, mod in list(sys.modules.items())
        if type(mod).__name__ == "MagicMock" and getattr(mod, "__spec__", None) is None
    }
    for name in hidden:
        del sys.modules[name]
    try:
        yield
    finally:
        for name, mod in hidden.items():
            sys.modules.setdefault(name, mod)


def import_diffusers():
    """``import diffusers`` (and transformers) with colour-science's mocks out of the way."""
    with spec_less_modules_hidden():
        import diffusers
        import transformers  # noqa: F401  (probes optional packages the same way)
    return diffusers
