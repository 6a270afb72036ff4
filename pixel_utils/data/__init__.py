"""Data: where sharp photos come from (``sources``), how they are degraded (``degradations``),
the training streams cut from them (``datasets``), the fixed test set (``benchmark``) and image
files in and out (``images``)."""
