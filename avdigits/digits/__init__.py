"""The paper's task: image and speech convnets, then the aligner between
them (`two_stage`), their report (`report`), the aligner's start draws
(`draws`) and the config checks (`validation`)."""
