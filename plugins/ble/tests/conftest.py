"""Let ``pytest plugins/ble/tests`` run from a clean clone without installing the
plugin: its package directory goes on sys.path (the framing needs no radio or bleak)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
