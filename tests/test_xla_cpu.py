"""The recommended XLA:CPU flags: which jaxlib gets them, the user's own setting wins, the CLI applies them in time."""

import importlib.metadata
import os
import subprocess
import sys

import pytest

from hybrid_seq import xla_cpu


@pytest.mark.parametrize(("version", "expected"), [
    ("0.10.2", [xla_cpu.YNN_FUSION_SETTING]),
    ("0.10.0", [xla_cpu.YNN_FUSION_SETTING]),
    ("0.9.2", []),
    ("0.11.0", []),
    ("1.0.0.dev20270101", []),
])
def test_flags_only_for_the_measured_jaxlib(version: str, expected: list[str]) -> None:
    assert xla_cpu.recommended_flags(version) == expected


def test_existing_flags_are_kept_and_a_user_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.10.2")
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert xla_cpu.apply_recommended_flags(environ) == [xla_cpu.YNN_FUSION_SETTING]
    assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=8 {xla_cpu.YNN_FUSION_SETTING}"
    assert xla_cpu.apply_recommended_flags(environ) == []  # idempotent

    mine = {"XLA_FLAGS": f"{xla_cpu.YNN_FUSION_FLAG}=dot"}
    assert xla_cpu.apply_recommended_flags(mine) == []
    assert mine["XLA_FLAGS"] == f"{xla_cpu.YNN_FUSION_FLAG}=dot"

    empty: dict[str, str] = {}
    xla_cpu.apply_recommended_flags(empty)
    assert empty["XLA_FLAGS"] == xla_cpu.YNN_FUSION_SETTING


def test_the_cli_sets_the_flags_before_jax_creates_its_backend() -> None:
    """Importing the CLI creates no backend, so the flags `main` adds reach XLA (and a known flag does not abort it)."""
    script = (
        "import os, jax, hybrid_seq.cli as cli\n"
        "from jax._src import xla_bridge\n"
        "cli.build_parser()\n"
        "assert not xla_bridge.backends_are_initialized()\n"
        "cli.main(['info', 'griffin-tiny'])\n"
        "assert float(jax.numpy.ones(3).sum()) == 3.0\n"
        "print('XLA_FLAGS=' + os.environ.get('XLA_FLAGS', ''))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    expected = " ".join(xla_cpu.recommended_flags(importlib.metadata.version("jaxlib")))
    assert run.stdout.strip().splitlines()[-1] == f"XLA_FLAGS={expected}"
