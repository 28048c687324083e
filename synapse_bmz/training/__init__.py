"""Supervised training and domain adaptation of U-Nets, ending in a bioimage.io package."""
