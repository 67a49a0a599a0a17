"""A local Coupa look-alike: the tap's demo data source and test bed.

Serves the resources of its own model (``resources.json``, built from Coupa's R39
definitions, independently of ``tap_coupa``) at ``GET /api/<path>`` with Coupa's
OAuth, query, paging, rate-limit and error semantics, plus seeded faults, live
mutation and an admin API under ``/_sandbox/``.
"""

from .config import PROFILES, SandboxConfig
from .faults import FaultConfig
from .query import NEWER_RELEASE_FIELD
from .sandbox import Sandbox

__all__ = ["NEWER_RELEASE_FIELD", "PROFILES", "FaultConfig", "Sandbox", "SandboxConfig"]
