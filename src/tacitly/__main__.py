"""``python -m tacitly``: the same as the ``tacitly`` command (e.g. under ``accelerate launch``)."""

from tacitly.cli import main

main()
