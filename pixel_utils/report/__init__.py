"""The report: the notebook runner (``runner``; ``python -m pixel_utils.report``), its figures
(``viz``, ``teaching``), widgets, the offline HTML export and the README table (``readme``)."""
