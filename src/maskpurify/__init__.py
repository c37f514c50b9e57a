"""maskpurify: purify real images into the synthetic style with a mask-guided style transfer network.

Reconstruction of Zhao et al., "Mask-guided Style Transfer Network for Purifying Real Images" (arXiv 1903.08152).
"""

__version__ = "0.1.0"
