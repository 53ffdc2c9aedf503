import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# This checkout's code first (the workflow does the same), then the test helpers.
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """A converted-model cache of the test session's own (xlt.modelcache): tests never read
    or fill the user's, so they start from the same state on every machine."""
    import os

    folder = tmp_path_factory.mktemp("model-cache")
    saved = os.environ.get("XLT_CACHE_DIR")
    os.environ["XLT_CACHE_DIR"] = str(folder)
    yield folder
    if saved is None:
        del os.environ["XLT_CACHE_DIR"]
    else:
        os.environ["XLT_CACHE_DIR"] = saved


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """{'tiny-dense': dir, 'tiny-moe': dir}: random-init checkpoints with tokenizers."""
    from tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def prepared_tiny(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """The tiny models as prepare_model leaves them (manifest pointing at the folder)."""
    from xlt.models import ModelSpec, prepare_model

    root = tmp_path_factory.mktemp("prepared")
    out = {}
    for name, path in tiny_models.items():
        prepare_model(ModelSpec(name=name, path=str(path)), root / name / "base")
        out[name] = root / name / "base"
    return out


@pytest.fixture(scope="session")
def study_config(repo) -> dict:
    from xlt.config import load_config

    return load_config(repo / "config" / "config.yaml")


@pytest.fixture(scope="session")
def tiny_study(repo, tiny_models, tmp_path_factory) -> tuple[Path, Path]:
    """(workdir, configfile) of one complete run of the workflow on the test config.
    Tests only read it or plan against it (dry runs), so they can share it."""
    from snakemake_runs import run_snakemake, write_test_config

    workdir = tmp_path_factory.mktemp("study")
    configfile = write_test_config(workdir, tiny_models)
    run_snakemake(repo, workdir, configfile)
    return workdir, configfile
