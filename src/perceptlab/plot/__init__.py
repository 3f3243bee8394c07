"""Pictures for reports: SVG line plots (:mod:`.lines`) and image sheets (:mod:`.sheets`)."""

from perceptlab.plot.lines import line_plot
from perceptlab.plot.sheets import crop_sheet, whole_image_sheet

__all__ = ["crop_sheet", "line_plot", "whole_image_sheet"]
