"""The models: the paper's convnets and aligner (`convnets`), their
factories from a config section (`nets`) and the digit-string sequence
encoders (`sequence`). `from avdigits.models import ImageNet, SpeechNet,
Aligner` is the public path of the paper's three modules."""

from avdigits.models.convnets import Aligner, ImageNet, SpeechNet

__all__ = ["Aligner", "ImageNet", "SpeechNet"]
