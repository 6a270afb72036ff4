"""Training: the one loop (``loop``), its losses, knowledge distillation (``distillation``), the
pipeline's stages as functions of a profile (``stages``), the long pretraining of the shipped
teacher (``pretrain``) and the student design sweep (``sweep``)."""
