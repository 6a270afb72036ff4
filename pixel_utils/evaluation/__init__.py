"""Evaluation: metrics and their conventions (``metrics``), the one scoring loop and its
statistics (``scoring``), classical baselines and deconvolution theory (``baselines``,
``deconvolution``), running a model on whole photos (``inference``), model cost and speed
(``cost``) and generalisation to other photo folders (``generalisation``)."""
