"""The lab's figures: `python -m analysis` redraws every one from committed results."""
