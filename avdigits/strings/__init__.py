"""Spoken numbers matched to written numbers: string data (`data`), their
features (`features`), training (`train`), retrieval/reading/localisation
(`evaluate`), the resumable run (`pipeline`), the report (`report`) and the
config checks (`validation`)."""
