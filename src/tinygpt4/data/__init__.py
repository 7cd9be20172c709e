"""Data: readers for public formats (readers.py) and the pretraining token cache and batches (pretrain_data.py)."""
