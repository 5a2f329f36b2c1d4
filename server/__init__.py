"""facetwo's backend: data loading and validation, training, evaluation, the registry service
and the `facetwo` command line."""

from __future__ import annotations
