"""tools/verify_bundle.py: the model zoo's checks offline, on every repository bundle and on hand-made faults."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(REPO_ROOT, "bundles")
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import verify_bundle as vb  # noqa: E402

ALL_BUNDLES = sorted(d for d in os.listdir(BUNDLES) if os.path.isfile(os.path.join(BUNDLES, d, "configs", "metadata.json")))


@pytest.mark.parametrize("bundle", ALL_BUNDLES)
def test_repository_bundles_pass_the_source_checks(bundle: str) -> None:
    """Version with its changelog entry, the vendored schema, installable packages only, the necessary files."""
    assert vb.verify(os.path.join(BUNDLES, bundle), "source") == []


def test_a_version_bump_without_a_changelog_entry_fails() -> None:
    ok = {"version": "0.2.0", "changelog": {"0.2.0": "new", "0.1.0": "first"}}
    assert vb.check_version(ok) == []
    assert "no changelog entry" in vb.check_version({**ok, "version": "0.3.0"})[0]
    assert "not the newest" in vb.check_version({**ok, "version": "0.1.0"})[0]
    assert vb.check_version({"version": "0.1.0"})


def test_metadata_is_checked_against_the_vendored_schema(tmp_path) -> None:
    meta = json.load(open(os.path.join(BUNDLES, "rotation", "configs", "metadata.json")))
    del meta["network_data_format"]
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(meta))
    assert "does not validate" in vb.check_metadata(str(path))[0]
    with pytest.raises(FileNotFoundError, match="not vendored"):
        vb.schema_file({"schema": "https://example.org/meta_schema_20990101.json"})


def test_packages_must_be_installed_and_not_this_repository() -> None:
    problems = vb.check_packages({"required_packages_version": {"united-ssl-bundles": "0.1.0", "no-such-dist-x": "1.0", "pyyaml": "0.0.1"}})
    assert any("this repository" in p for p in problems)
    assert any("not installed" in p for p in problems)
    assert any("pyyaml==0.0.1" in p for p in problems)


def test_large_files_hash_and_declared_export_mode(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"weights")
    (tmp_path / "large_files.yml").write_text("large_files:\n  - path: models/model.pt\n    url: ''\n    hash_val: '0' \n    hash_type: md5\n")
    assert "md5" in vb.check_large_files(str(tmp_path))[0]
    (tmp_path / "models" / "model.pt").unlink()
    assert "neither present nor downloadable" in vb.check_large_files(str(tmp_path))[0]
    assert vb.torchscript_mode({"united_ssl": {"torchscript": "trace"}}) == "trace"
    assert vb.torchscript_mode({"united_ssl": {"torchscript": "trace"}, "united_ssl_package": {"torchscript": "script"}}) == "script"
    with pytest.raises(KeyError, match="torchscript"):
        vb.torchscript_mode({})


def test_min_mode_needs_the_weights(tmp_path) -> None:
    bundle = tmp_path / "rotation"
    shutil.copytree(os.path.join(BUNDLES, "rotation", "configs"), bundle / "configs")
    shutil.copy(os.path.join(BUNDLES, "rotation", "LICENSE"), bundle / "LICENSE")
    problems = vb.verify(str(bundle), "min")
    assert any("models/model.pt" in p for p in problems) and any("large_files.yml" in p for p in problems)
