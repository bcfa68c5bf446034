"""The VTAB-1k Structured label rules on hand-made examples that follow the official definitions."""

from __future__ import annotations

import numpy as np
import pytest

from alore_bench.data.label_rules import LABEL_RULES, LabelRuleError

IMAGE = np.zeros((4, 4, 3), np.uint8)


def clevr(depths):
    n = len(depths)
    return {"image": IMAGE, "objects": {"size": np.zeros(n), "pixel_coords": np.array([[1.0, 2.0, d] for d in depths])}}


@pytest.mark.parametrize("objects,label", [(3, 0), (4, 1), (10, 7)])
def test_clevr_count(objects, label):
    assert LABEL_RULES["clevr_count"](clevr([9.0] * objects))[1] == label


@pytest.mark.parametrize("objects", [0, 2, 11])
def test_clevr_count_outside_3_to_10_has_no_label(objects):
    with pytest.raises(LabelRuleError, match=f"{objects} objects"):
        LABEL_RULES["clevr_count"](clevr([9.0] * objects))


@pytest.mark.parametrize("closest,label", [
    (0.5, 0), (8.0, 0),  # thresholds are exclusive below: d = 8 still falls in (0, 8]
    (8.0001, 1), (8.5, 1), (8.7, 2), (9.0, 2), (9.2, 3), (9.5, 3), (9.9, 4), (10.0, 4), (10.01, 5), (100.0, 5),
])
def test_clevr_closest_distance_bins(closest, label):
    assert LABEL_RULES["clevr_closest_distance"](clevr([closest + 3, closest, closest + 1]))[1] == label


@pytest.mark.parametrize("closest", [0.0, -1.0, 100.5])
def test_clevr_distance_outside_thresholds(closest):
    with pytest.raises(LabelRuleError):
        LABEL_RULES["clevr_closest_distance"](clevr([closest]))


def kitti(types, depths):
    return {"image": IMAGE, "objects": {"type": np.array(types),
                                         "location": np.array([[0.0, 1.0, d] for d in depths]).reshape(-1, 3)}}


@pytest.mark.parametrize("types,depths,label", [
    ([0], [5.0], 0), ([1], [8.0], 0), ([2], [8.01], 1), ([0], [20.0], 1), ([0], [20.5], 2), ([0], [999.0], 2),
    ([0, 3, 1], [30.0, 2.0, 12.0], 1),  # the pedestrian (type 3) at 2 m is not a vehicle
    ([3, 4, 5, 6, 7], [1.0, 2.0, 3.0, 4.0, 5.0], 3),  # no car, van or truck
    ([], [], 3),  # no object at all
])
def test_kitti_closest_vehicle_distance(types, depths, label):
    assert LABEL_RULES["kitti_closest_vehicle_distance"](kitti(types, depths))[1] == label


def test_kitti_inconsistent_objects_are_rejected():
    with pytest.raises(LabelRuleError, match="2 types but 1 locations"):
        LABEL_RULES["kitti_closest_vehicle_distance"](kitti([0, 1], [5.0]))


@pytest.mark.parametrize("value,label", [(0, 0), (1, 0), (2, 1), (30, 15), (31, 15)])
def test_dsprites_x_position_16_bins(value, label):
    example = {"image": np.ones((64, 64, 1), np.uint8), "label_x_position": value}
    assert LABEL_RULES["dsprites_x_position"](example)[1] == label


@pytest.mark.parametrize("value,label", [(0, 0), (2, 0), (3, 1), (5, 2), (37, 14), (38, 15), (39, 15)])
def test_dsprites_orientation_bins_of_2_5(value, label):
    example = {"image": np.ones((64, 64, 1), np.uint8), "label_orientation": value}
    assert LABEL_RULES["dsprites_orientation"](example)[1] == label


def test_dsprites_image_becomes_3_channel_0_255():
    binary = np.zeros((64, 64, 1), np.uint8)
    binary[10:20, 5:9] = 1
    image, _ = LABEL_RULES["dsprites_x_position"]({"image": binary, "label_x_position": 3})
    assert image.shape == (64, 64, 3) and set(np.unique(image)) == {0, 255}
    assert (image[..., 0] == image[..., 2]).all() and image[15, 6, 1] == 255


@pytest.mark.parametrize("rule,attribute,classes", [("smallnorb_azimuth", "label_azimuth", 18),
                                                    ("smallnorb_elevation", "label_elevation", 9)])
def test_smallnorb_uses_first_camera_as_rgb(rule, attribute, classes):
    first, second = np.full((96, 96, 1), 7, np.uint8), np.full((96, 96, 1), 9, np.uint8)
    image, label = LABEL_RULES[rule]({"image": first, "image2": second, attribute: classes - 1})
    assert label == classes - 1 and image.shape == (96, 96, 3) and (image == 7).all()
    with pytest.raises(LabelRuleError):
        LABEL_RULES[rule]({"image": first, attribute: classes})
