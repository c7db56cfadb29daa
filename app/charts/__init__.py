"""Every chart of the app, one module per area: structure (trace, compare, learn), live (the Live lab),
training (the Training lab), experiments (Why it works); Altair, except the Live lab's forward views,
drawn on the server as SVG (svg.py). Pages only place them."""

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]
