"""Style transfer: Gatys et al. (VGG features, Gram matrices, L-BFGS or Adam).

Imports only the shared modules at the root of ``core``.
"""
