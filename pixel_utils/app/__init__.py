"""The application: the ``pixel-sharpen`` command line (``cli``), the shipped weights and model
names (``pretrained``) and ONNX export with int8 serving (``onnx_export``)."""
