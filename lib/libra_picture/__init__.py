"""Pictures of the GPU memory plan (SVG), from the planner's resolved tier."""

from .svg import PictureError, instance_layout, render_plan_svg

__all__ = ["PictureError", "instance_layout", "render_plan_svg"]
