"""Test configuration: fake CPU devices, hypothesis profiles, runtime shape/dtype checks.

Must run before JAX is imported anywhere: it sets 8 fake host devices so sharding
tests run on one CPU, and installs jaxtyping + beartype on the `hybrid_seq` package so
every annotated shape and dtype is checked at call (trace) time.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hypothesis import HealthCheck, settings  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

install_import_hook("hybrid_seq", "beartype.beartype")

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
