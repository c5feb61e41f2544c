"""``python -m mfrkit``: the same as the ``mfrkit`` command."""

from .cli import main

main()
