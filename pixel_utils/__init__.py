"""Helpers for the image-sharpening-by-distillation course."""
