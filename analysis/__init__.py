"""Turns a finished sweep's stored results into tables, figures and summary.html.

    python -m analysis <experiment folder or s3:// / gs:// URI>

or, from code (the sweep job calls this when it ends): `build_report(experiment)`.
"""

from analysis.report import build_report

__all__ = ["build_report"]
