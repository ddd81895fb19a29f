"""What the models see: waveform perturbation (`perturb`), image
augmentation (`augment`), test-time corruption (`corrupt`), speech training
sets with their copies and voices (`speech_data`), and the prepared arrays
of a config (`prepare`: load, split, featurise)."""
