"""``python -m tacitly.cli``: the same as the ``tacitly`` command."""

from tacitly.cli import main

main()
