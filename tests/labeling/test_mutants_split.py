"""Which split a labeled image joins, from its hash alone: the two draws and the
boundaries between train, validation and test, on hashes chosen by hand."""

from __future__ import annotations

import pytest

from labeling.models import Image
from labeling.services import split_for

ZEROS = "0" * 64


def hash_with(first: str, second: str = "000000000000") -> str:
    """A content hash whose first twelve hex digits are `first`, the next `second`."""
    return (first + second + ZEROS)[:64]


@pytest.mark.parametrize(
    ("digits", "draw"),
    [
        ("000000000000", 0.0),
        ("800000000000", 0.5),
        ("400000000000", 0.25),
        ("c00000000000", 0.75),
        ("ffffffffffff", (16**12 - 1) / 16**12),
        ("000000000001", 1 / 16**12),
    ],
)
def test_the_draws_read_twelve_hex_digits_each_as_a_fraction(digits, draw):
    assert Image.draw_for(hash_with(digits, "123456789abc")) == draw
    assert Image.second_draw_for(hash_with("123456789abc", digits)) == draw
    # Digits after the first 24 change neither.
    assert Image.draw_for(hash_with(digits)[:24] + "f" * 40) == draw


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second", "split"),
    [
        # Held out below test + val = 0.5; of those, test below 0.25 / 0.5 = 0.5.
        ("7fffffffffff", "7fffffffffff", Image.Split.TEST),
        ("7fffffffffff", "800000000000", Image.Split.VAL),
        ("000000000000", "ffffffffffff", Image.Split.VAL),
        ("000000000000", "000000000000", Image.Split.TEST),
        ("800000000000", "000000000000", Image.Split.TRAIN),
        ("ffffffffffff", "000000000000", Image.Split.TRAIN),
    ],
)
def test_a_labeled_image_joins_the_split_its_two_draws_name(project, first, second, split):
    project.test_fraction, project.val_fraction = 0.25, 0.25
    content_hash = hash_with(first, second)
    image = Image(project=project, content_hash=content_hash, draw=Image.draw_for(content_hash))
    assert split_for(image=image) == split


@pytest.mark.django_db
def test_the_test_share_of_held_out_images_is_test_over_test_plus_val(project):
    # Test 0.3, val 0.1: held out below 0.4, and three in four held out are test.
    project.test_fraction, project.val_fraction = 0.3, 0.1

    def split(first, second):
        content_hash = hash_with(first, second)
        return split_for(
            image=Image(
                project=project, content_hash=content_hash, draw=Image.draw_for(content_hash)
            )
        )

    assert split("600000000000", "bfffffffffff") == Image.Split.TEST  # draw 0.375
    assert split("600000000000", "c00000000000") == Image.Split.VAL  # second 0.75
    assert split("680000000000", "000000000000") == Image.Split.TRAIN  # draw 0.406
