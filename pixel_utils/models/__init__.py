"""Models: the teacher and student networks (``networks``) and where a network spends its
parameters and MACs (``anatomy``)."""
