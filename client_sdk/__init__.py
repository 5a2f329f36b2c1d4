"""facetwo client SDK: verifies signed model bundles and recommends on the device.

Private signals recorded here never leave the device.
"""

from __future__ import annotations

__version__ = "0.1.0"
