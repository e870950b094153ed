"""Errors raised by the memory planner.

Every error names the Ansible filter the user called and the input field that is wrong, so a
failed play points at the variable to fix.
"""

from __future__ import annotations


class PlannerError(ValueError):
    """Bad planner input: ``<filter>: field '<field>': <message>``."""

    def __init__(self, filter_name: str, field: str, message: str) -> None:
        self.filter_name = filter_name
        self.field = field
        self.message = message
        super().__init__(f"{filter_name}: field '{field}': {message}")
