"""The PyTorch backend of TSstc. Imported lazily: ``import tsstc_sc`` does not import torch."""
