"""Network architectures. Each module is self-contained (imports only torch) so
that it can be shipped verbatim inside a bioimage.io package as the
``architecture`` source of the ``pytorch_state_dict`` weights."""

from .unet import UNet

__all__ = ["UNet"]
