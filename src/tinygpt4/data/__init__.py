"""Data: readers for public formats and captions (readers.py), images (images.py), and the pretraining
token cache and batches (pretrain_data.py)."""
