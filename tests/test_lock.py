"""The pinned stack: constraints.txt (written by .ci/lock.sh from the environment the
tests passed in) pins every package the README's test install puts there, the README
and CI install with it, and the inference engine refuses a transformers outside the
range it was tested with, the lock's own version inside it."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from snakemake_runs import REPO

from xlt.errors import XltError
from xlt.inference.kvcache import TESTED_TRANSFORMERS, check_transformers


def pins() -> dict[str, str]:
    lines = [line.strip() for line in (REPO / "constraints.txt").read_text().splitlines()]
    found = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def installed_requirements(extras: tuple[str, ...]) -> set[str]:
    """Every distribution `pip install -e '.[EXTRAS]'` brings in, followed through the
    installed packages' own requirements (those whose markers hold here)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    queue = [Requirement(line) for line in project["dependencies"]]
    queue += [Requirement(line) for extra in extras for line in project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while queue:
        requirement = queue.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        for line in dist.requires or []:
            nested = Requirement(line)
            wanted = [extra for extra in requirement.extras] or [""]
            if nested.marker is None or any(nested.marker.evaluate({"extra": extra}) for extra in wanted):
                queue.append(nested)
    return seen


def test_the_lock_pins_every_package_of_the_test_install():
    locked = pins()
    # pip, the installer, is left to the machine's venv (.ci/lock.sh says why).
    missing = sorted(name for name in installed_requirements(("test",)) - {"pip"} if name not in locked)
    assert missing == []
    # Each pin is what the tests run with here (the lock was written from it).
    differ = {
        name: (version, distribution(name).version)
        for name, version in locked.items()
        if distribution(name).version.split("+")[0] != version
    }
    assert differ == {}


def test_torch_is_pinned_without_a_local_label():
    """PyPI carries no 2.13.0+cpu: the pin installs the CPU build where an index offers
    it, and PyPI's build on a fresh machine."""
    assert re.fullmatch(r"\d+(\.\d+)+", pins()["torch"])
    assert not [version for version in pins().values() if "+" in version]


def test_the_tested_transformers_range_is_the_locks_and_the_installs():
    assert pins()["transformers"] in SpecifierSet(TESTED_TRANSFORMERS)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    asked = next(Requirement(line) for line in project["dependencies"] if line.startswith("transformers"))
    assert asked.specifier == SpecifierSet(TESTED_TRANSFORMERS)
    assert f"transformers{TESTED_TRANSFORMERS}" in (REPO / "envs" / "models.yaml").read_text().replace(" ", "")


@pytest.mark.parametrize("version", ["5.0.0", "5.24.1", "5.26.0", "6.0.0", "5.26.0.dev0"])
def test_the_engine_refuses_an_untested_transformers_in_one_line(version):
    with pytest.raises(XltError) as refused:
        check_transformers(version)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"transformers {version}: the inference engine is tested with transformers{TESTED_TRANSFORMERS} only"
    )
    assert "pip install -c constraints.txt" in message
    check_transformers(pins()["transformers"])
    check_transformers()


def test_the_readme_and_ci_install_with_the_lock():
    readme = (REPO / "README.md").read_text()
    installs = re.findall(r"pip install [^\n`]*", readme) + re.findall(
        r"pip install [^\n]*", (REPO / ".ci" / "run").read_text()
    )
    assert installs
    assert [command for command in installs if "-e " in command and "-c constraints.txt" not in command] == []


def test_the_readme_states_the_tested_range():
    assert f"`{TESTED_TRANSFORMERS}`" in (REPO / "README.md").read_text()
