"""Mask clean-up on synthetic shapes: parts kept, specks dropped, real holes left open."""

from __future__ import annotations

import cv2
import numpy as np

from stages.segment.cleanup import clean_mask, open_background_holes


def _ring_with_noise() -> np.ndarray:
    mask = np.zeros((128, 128), np.uint8)
    cv2.circle(mask, (50, 64), 30, 1, -1)
    cv2.circle(mask, (50, 64), 16, 0, -1)  # the ring's hole: real background
    cv2.circle(mask, (105, 30), 9, 1, -1)  # a second part (an earring's partner)
    mask[64, 27] = 0  # a pinhole in the ring's body
    mask[5, 5] = mask[120, 120:122] = 1  # specks
    return mask


def test_ring_hole_stays_open_pinhole_filled_specks_dropped():
    cleaned = clean_mask(_ring_with_noise())
    assert not cleaned[64, 50]  # ring centre stays transparent
    assert cleaned[64, 27]  # pinhole filled
    assert not cleaned[5, 5] and not cleaned[120, 120]
    assert cleaned[30, 105]  # the second part is kept


def test_handle_filled_in_by_the_model_is_cut_open_where_it_shows_background():
    mask = np.zeros((100, 100), bool)
    mask[20:80, 20:60] = True
    mask[35:65, 60:85] = True  # handle region, filled in
    background_like = np.zeros_like(mask)
    background_like[42:58, 60:76] = True  # the handle's inside shows the backdrop
    background_like[0:10, :] = True  # outside the mask: irrelevant
    background_like[20:30, 50:60] = True  # touches the outline: an edge, not a hole
    opened = open_background_holes(mask, background_like)
    assert not opened[50, 68]
    assert opened[25, 55] and opened[40, 40]
    assert opened.sum() == mask.sum() - 16 * 16
