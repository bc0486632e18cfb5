"""``python -m gridengine`` is the ``gridengine`` command."""

from .cli import main

raise SystemExit(main())
