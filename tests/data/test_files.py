"""data.files: folders created, atomic replacement, every failure raised naming the path with nothing left behind."""

import json
import os

import cv2
import numpy as np
import pytest

from data import files


def _picture():
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, :8] = (255, 0, 0)  # left half red (RGB)
    image[3:9, 10:14] = (0, 200, 50)
    return image


def test_write_image_creates_the_class_subfolder_and_keeps_rgb(tmp_path):
    path = str(tmp_path / "figures" / "MoveRight" / "v_MoveRight_g01_c01_fig4.png")
    assert files.write_image(path, _picture()) == path
    decoded = cv2.imread(path)[..., ::-1]  # BGR -> RGB
    np.testing.assert_array_equal(decoded, _picture())
    assert os.listdir(os.path.dirname(path)) == ["v_MoveRight_g01_c01_fig4.png"]  # no temporary left


def test_write_image_already_bgr_and_grey(tmp_path):
    bgr = files.write_image(str(tmp_path / "bgr.png"), _picture(), rgb=False)
    np.testing.assert_array_equal(cv2.imread(bgr), _picture())
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(
        cv2.imread(files.write_image(str(tmp_path / "g.png"), grey), cv2.IMREAD_UNCHANGED), grey
    )


def _assert_nothing_written(folder):
    leftovers = [name for name in os.listdir(folder) if ".tmp-" in name]
    assert not leftovers, leftovers


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "MoveRight").write_text("not a folder")
    path = str(tmp_path / "MoveRight" / "v_MoveRight_g01_c01_fig4.png")
    with pytest.raises(files.WriteError, match=r"could not write .*v_MoveRight_g01_c01_fig4\.png: a file stands"):
        files.write_image(path, _picture())
    with pytest.raises(OSError, match="MoveRight"):  # WriteError is an OSError
        files.write_json(str(tmp_path / "MoveRight" / "deeper" / "m.json"), {"a": 1})
    assert (tmp_path / "MoveRight").read_text() == "not a folder"
    _assert_nothing_written(tmp_path)


def test_the_path_is_a_folder(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(files.WriteError, match=r"out\.png: it is an existing folder"):
        files.write_image(str(tmp_path / "out.png"), _picture())


def test_unknown_extension_is_a_clear_error(tmp_path):
    with pytest.raises(files.WriteError, match=r"picture\.xyz: OpenCV cannot encode it .*use \.png"):
        files.write_image(str(tmp_path / "picture.xyz"), _picture())
    assert os.listdir(tmp_path) == []


def test_unwritable_location_cv2_false_is_raised():
    """cv2.imwrite returns False (no exception) on a read-only file system; that used to be reported as written."""
    target = "/sys/stpa_write_test.png"
    if os.access("/sys", os.W_OK) and cv2.imwrite(target, _picture()):  # pragma: no cover - not a read-only /sys
        os.remove(target)
        pytest.skip("/sys is writable here")
    with pytest.raises(files.WriteError, match=r"could not write /sys/stpa_write_test\.png"):
        files.write_image(target, _picture())
    assert not os.path.exists(target)


def test_writer_failures_keep_the_old_file(tmp_path):
    path = str(tmp_path / "report.json")
    files.write_json(path, {"top1": 0.5})

    def broken(temporary):
        with open(temporary, "w") as f:
            f.write("{half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        files.write_atomic(path, broken)
    with pytest.raises(files.WriteError, match="reported failure"):
        files.write_atomic(path, lambda temporary: False)
    with pytest.raises(files.WriteError, match="produced no data"):
        files.write_atomic(path, lambda temporary: open(temporary, "w").close())
    with pytest.raises(ValueError, match="not JSON"):
        with files.open_atomic(path) as f:
            f.write("partial")
            raise ValueError("not JSON")
    assert json.loads(open(path).read()) == {"top1": 0.5}
    assert os.listdir(tmp_path) == ["report.json"]


def test_text_and_json_round_trip(tmp_path):
    assert open(files.write_text(str(tmp_path / "a" / "b.txt"), "naïve\n"), encoding="utf-8").read() == "naïve\n"
    value = {"b": [1, 2.5, None], "a": "x"}
    path = files.write_json(str(tmp_path / "m.json"), value, sort_keys=True)
    assert open(path).read() == json.dumps(value, indent=2, sort_keys=True) + "\n"
    with pytest.raises(ValueError, match="mode"):
        with files.open_atomic(str(tmp_path / "x"), "a"):
            pass


def test_remote_paths_go_through_tf_gfile():
    """A `tf.io.gfile` URL (here TensorFlow's in-memory ram:// file system, like gs://) is written and read back."""
    import tensorflow as tf

    path = files.write_image("ram://files_test/MoveRight/v_fig4.png", _picture())
    decoded = cv2.imdecode(np.frombuffer(tf.io.gfile.GFile(path, "rb").read(), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded[..., ::-1], _picture())
    files.write_json("ram://files_test/m.json", {"top1": 0.25})
    assert json.loads(tf.io.gfile.GFile("ram://files_test/m.json").read()) == {"top1": 0.25}
    with pytest.raises(files.WriteError, match="ram://files_test/MoveRight: it is an existing folder"):
        files.write_json("ram://files_test/MoveRight", {})
