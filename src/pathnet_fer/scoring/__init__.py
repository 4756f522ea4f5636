"""Scores of a model's predictions, shared by a study's report and ``pathnet-fer evaluate``.

``metrics``: held-out accuracy, macro-F1, UAR, collapse, clip votes, reliability;
``on_faces``: a model scored on labelled face crops (tables and the printed report);
``reliability_figure``: the calibration diagram and how figures are saved.
"""
