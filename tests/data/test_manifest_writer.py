"""data.records.write_manifest: the one writer of split manifests, read back by `read_manifest` exactly."""

import json
import os

import pytest

from data import records


def test_written_manifest_reads_back_with_the_defaults_filled_in(tmp_path):
    split_dir = str(tmp_path / "out" / "train")  # not there yet: created
    manifest = {"class_names": ["MoveRight", "MoveLeft"], "counts": {"videos": 3}, "multi_label": False}
    path = records.write_manifest(split_dir, manifest)
    assert path == os.path.join(split_dir, "manifest.json")
    expected = {**manifest, "num_classes": 2, "format_version": records.FORMAT_VERSION}
    assert records.read_manifest(split_dir) == expected
    with open(path) as f:
        assert json.load(f) == expected
    assert os.listdir(split_dir) == ["manifest.json"]  # the temporary file was renamed into place
    assert records.split_dir_of(split_dir) == split_dir
    assert records.manifest_video_count(records.read_manifest(split_dir)) == 3
    assert manifest == {"class_names": ["MoveRight", "MoveLeft"], "counts": {"videos": 3}, "multi_label": False}


def test_rewriting_replaces_the_manifest_and_keeps_given_fields(tmp_path):
    records.write_manifest(str(tmp_path), {"class_names": ["a"], "flags": {"x": 1}})
    records.write_manifest(str(tmp_path), {"class_names": ("a", "b"), "num_classes": 2, "format_version": 0})
    assert records.read_manifest(str(tmp_path)) == {"class_names": ["a", "b"], "num_classes": 2, "format_version": 0}


def test_bad_manifests_are_refused_naming_the_split(tmp_path):
    with pytest.raises(ValueError, match=r"manifest of .*train needs class_names"):
        records.write_manifest(str(tmp_path / "train"), {"counts": {"videos": 1}})
    with pytest.raises(ValueError, match=r"num_classes=3 but lists 2 class_names"):
        records.write_manifest(str(tmp_path / "train"), {"class_names": ["a", "b"], "num_classes": 3})
    assert not os.path.exists(tmp_path / "train" / "manifest.json")
