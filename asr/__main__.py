"""``python -m asr`` (e.g. under torchrun): the ``asr`` command."""

import sys

from asr.cli import main

sys.exit(main())
