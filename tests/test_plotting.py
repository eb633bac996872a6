"""Figures: saved atomically as PNG and SVG, the same bytes every time."""

import matplotlib.pyplot as plt

from transcoder_lab.plotting import save_figure


def test_the_same_figure_saves_to_the_same_bytes(tmp_path):
    figure, axis = plt.subplots()
    axis.plot([0, 1, 2], [1, 0, 2], label="a line")
    axis.legend()
    first = save_figure(figure, tmp_path / "first")
    second = save_figure(figure, tmp_path / "second")
    plt.close(figure)
    assert [p.suffix for p in first] == [".png", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix
    assert b"<dc:date>" not in first[1].read_bytes()
