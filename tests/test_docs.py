"""The README's commands are the ones CI runs; every hook and reference component is documented."""

from __future__ import annotations

import re

import ntframe.hookspecs
from tests.conftest import ROOT


def test_readme_opens_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block and readme.index("```sh") < 20, "the README must open with its commands"
    setup, test = block.group(1).strip().splitlines()
    assert "ntframe run examples/" in setup and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup in ci and test in ci


def test_every_hook_and_component_is_documented(host):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    for hook in ntframe.hookspecs.HOOK_FAMILIES:
        assert hook in guide
    model = (ROOT / "docs" / "model.md").read_text()
    for reg in host.components.values():
        assert reg.cls.description, reg.name
        assert f"`{reg.name}`" in model, reg.name
        assert reg.cls.__module__ and __import__(reg.cls.__module__, fromlist=["x"]).__doc__
