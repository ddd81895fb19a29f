"""Training: the one resumable loop (`loop`), checkpoints, metric writers,
devices and meshes, optimisers, workdirs and stages, the classifier
(`classifier`), aligner (`align`) and joint (`joint`) trainers, and batched
prediction (`predict`)."""
