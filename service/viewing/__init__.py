"""The viewer step of the flow: opening a claimed consultation's study (who may, the manifest,
priors), warming its frames, and rendering frames in-process or on render workers. The pixel
pipeline itself is the top-level ``viewer`` package.
"""
