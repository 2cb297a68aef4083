"""``python -m deploy.images build``: see :mod:`deploy.images`."""

import sys

from deploy.images import main

sys.exit(main())
