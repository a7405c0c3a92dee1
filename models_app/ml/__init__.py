"""The learner's numerical core: torch and timm only, never Django.

Takes numpy arrays and file paths, returns numpy arrays and dataclasses, so it can be
tested and benchmarked on its own.
"""
