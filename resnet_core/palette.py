"""The colours every chart and graph uses, chosen to stay apart under colour-vision deficiency.

Built on Okabe & Ito's palette ("Color Universal Design", 2008), whose colours were picked to be told apart
by protanopes, deuteranopes and tritanopes. tests/test_palette.py checks each set that a reader must tell
apart with Machado et al.'s (2009) simulation of the three dichromacies (colorspacious, a test reference):
the smallest colour difference ΔE (CAM02-UCS) between any two members stays above MIN_DELTA_E. Colour is
never the only cue: every series also has its own dash pattern or marker (DASHES, MARKERS), and the
graph's skip edges are dashed.
"""

from __future__ import annotations

# Okabe-Ito
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"

MIN_DELTA_E = 12.0  # CAM02-UCS; about 1 is a just-noticeable difference, 12+ reads as a different colour

# The series of a chart, in order: the first two are the residual/plain pair of every comparison
SERIES = [BLUE, VERMILLION, SKY_BLUE, ORANGE, REDDISH_PURPLE]
RESIDUAL, PLAIN = BLUE, VERMILLION  # the same two in every chart: residual blue, plain vermillion
DASHES = [[1, 0], [8, 4], [2, 3], [8, 3, 2, 3], [12, 3]]  # a dash pattern per series (solid first)
MARKERS = ["circle", "square", "triangle-up", "diamond", "cross"]  # a marker per series

# The computation graph
MAIN_EDGE = "#444444"  # the main path F(x), solid
SKIP_EDGE = BLUE  # skip connections: dashed and blue
PROJECTION = ORANGE  # projection / zero-pad shortcuts (their nodes' outline and edges)
FAIL = "#B00020"  # the failing layer: red, thick outline and a ✗ in its label (never colour alone)

# Sets that a reader must tell apart (tests/test_palette.py)
MUST_DIFFER = {
    "graph edges: main path, skip, projection": [MAIN_EDGE, SKIP_EDGE, PROJECTION],
    "chart series (training curves, experiment pairs, live views)": SERIES[:4],
    "residual vs plain": [RESIDUAL, PLAIN],
}
